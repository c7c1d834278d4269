// Pushes in the console: live audience counts on the form, and a push's funnel while it runs.
// The pages work without this script: "Check audience" submits the form, and a reload shows
// the funnel. The HTML fragments come from the server's own templates, already escaped.
(function () {
  "use strict";

  function fieldsOf(form) {
    var params = new URLSearchParams();
    new FormData(form).forEach(function (value, name) {
      if (name !== "csrf_token" && name !== "action") params.append(name, value);
    });
    return params;
  }

  function liveCounts() {
    var form = document.getElementById("push-form");
    var target = document.getElementById("audience");
    if (!form || !target) return;
    var url = form.getAttribute("data-preview-url");
    var timer = null;
    var asked = 0;
    function ask() {
      var mine = ++asked;
      fetch(url + "?" + fieldsOf(form).toString(), { credentials: "same-origin" })
        .then(function (response) {
          if (window.voxpopSignedOut(response)) return null;
          return response.ok ? response.json() : null;
        })
        .then(function (answer) {
          if (answer && mine === asked) target.innerHTML = answer.html;
        })
        .catch(function () { /* the button still works */ });
    }
    var sent = false;
    function soon() {
      clearTimeout(timer);
      if (!sent) timer = setTimeout(ask, 300);
    }
    form.addEventListener("input", soon);
    form.addEventListener("change", soon);
    // Once the form is sent, no count is asked any more: a request still flying would carry
    // the old session cookie back after the next page (and with it a message already shown).
    form.addEventListener("submit", function () {
      sent = true;
      clearTimeout(timer);
      asked++;
    });
  }

  var chart = null;
  function drawChart(funnel) {
    var canvas = document.getElementById("funnel-chart");
    if (!canvas || !window.Chart || !funnel || !funnel.length) return;
    var stages = funnel[0].stages.map(function (s) {
      return s.name.charAt(0).toUpperCase() + s.name.slice(1);
    });
    var rows = funnel.filter(function (r) { return r.group !== "all"; });
    if (!rows.length) rows = funnel;
    var datasets = rows.map(function (r) {
      return { label: r.title, data: r.stages.map(function (s) { return s.count; }) };
    });
    if (chart) {
      chart.data.datasets = datasets;
      chart.update();
      return;
    }
    chart = new window.Chart(canvas, {
      type: "bar",
      data: { labels: stages, datasets: datasets },
      // People are counted in whole numbers: no tick at 0.5.
      options: { animation: false, scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } }
    });
  }

  function pollFunnel() {
    var target = document.getElementById("funnel");
    if (!target) return;
    var url = target.getAttribute("data-poll-url");
    var status = document.getElementById("push-status");
    function poll() {
      fetch(url, { credentials: "same-origin" })
        .then(function (response) {
          if (window.voxpopSignedOut(response)) return null;
          return response.ok ? response.json() : null;
        })
        .then(function (report) {
          if (!report) return;
          target.innerHTML = report.html;
          if (status) status.textContent = report.status;
          // The buttons follow the push: no "Send now" once it is sending.
          var actions = document.getElementById("push-actions");
          if (actions && report.actions_html !== undefined) {
            var focused = actions.contains(document.activeElement);
            if (actions.innerHTML !== report.actions_html) {
              actions.innerHTML = report.actions_html;
              // A button that went away had the focus: put it on the status that changed.
              if (focused && status) {
                status.setAttribute("tabindex", "-1");
                status.focus();
              }
            }
          }
          drawChart(report.funnel);
          // Deliveries and answers go on arriving once every message is handed over: a
          // finished push is still followed, less often.
          var running = report.status === "scheduled" || report.status === "sending";
          setTimeout(poll, running ? 2000 : 5000);
        })
        .catch(function () { setTimeout(poll, 5000); });
    }
    if (target.getAttribute("data-running") === "yes") setTimeout(poll, 2000);
    else poll();
  }

  liveCounts();
  pollFunnel();
})();
