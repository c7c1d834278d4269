// The Results page's charts and live counts (bot/console/results.py). A file, never an
// inline script (CSP). Every number is in the page's tables already: this only draws
// them as charts (Chart.js, vendored) and keeps them up to date while answers arrive, by
// asking the page's live.json every few seconds.
(function () {
  "use strict";
  var root = document.getElementById("results");
  if (!root) {
    return;
  }
  var charts = {};

  function draw(canvas) {
    var data = JSON.parse(canvas.getAttribute("data-chart"));
    var kind = canvas.getAttribute("data-kind") || "bar";
    var datasets = [{ label: "People", data: data.counts }];
    if (data.second) {
      datasets = [
        { label: "Started", data: data.counts },
        { label: "Completed", data: data.second }
      ];
    }
    var chart = new window.Chart(canvas, {
      type: kind === "line" ? "line" : "bar",
      data: { labels: data.labels, datasets: datasets },
      options: {
        animation: false,
        maintainAspectRatio: false,
        // Choices read best as horizontal bars; values (scales, numbers) as columns.
        indexAxis: kind === "bar" ? "y" : "x",
        plugins: { legend: { display: datasets.length > 1 } },
        // Counts of people are whole numbers: no tick at 0.5 (a category axis ignores it).
        scales: {
          x: { beginAtZero: true, ticks: { precision: 0 } },
          y: { beginAtZero: true, ticks: { precision: 0 } }
        }
      }
    });
    charts[data.id] = { chart: chart, keys: data.keys || [] };
  }

  if (window.Chart) {
    root.querySelectorAll("canvas[data-chart]").forEach(draw);
  }

  function setText(selector, text) {
    root.querySelectorAll(selector).forEach(function (element) {
      if (element.textContent !== text) {
        element.textContent = text;
      }
    });
  }

  function update(numbers) {
    setText('[data-live="responses"]', String(numbers.responses));
    // "1 response", "2 responses": the noun agrees with the number as it changes.
    setText('[data-live="responses-noun"]', numbers.responses === 1 ? "response" : "responses");
    Object.keys(numbers.statuses).forEach(function (status) {
      setText('[data-live="status-' + status + '"]', String(numbers.statuses[status]));
    });
    Object.keys(numbers.questions).forEach(function (id) {
      var question = numbers.questions[id];
      var q = '[data-q="' + CSS.escape(id) + '"]';
      setText(q + '[data-field="asked"]', String(question.asked));
      setText(q + '[data-field="answered"]', String(question.answered));
      var drawn = charts[id];
      question.rows.forEach(function (row) {
        var cell = q + '[data-key="' + CSS.escape(row[0]) + '"]';
        setText(cell + '[data-field="count"]', String(row[1]));
        setText(cell + '[data-field="percent"]', row[2].toFixed(1) + "%");
        if (drawn) {
          var index = drawn.keys.indexOf(row[0]);
          if (index >= 0) {
            drawn.chart.data.datasets[0].data[index] = row[1];
          }
        }
      });
      if (drawn) {
        drawn.chart.update();
      }
    });
  }

  var url = root.getAttribute("data-live-url");
  var every = 1000 * Number(root.getAttribute("data-poll-seconds") || "5");

  var stopped = false;

  function poll() {
    fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (response) {
        if (window.voxpopSignedOut(response)) {
          stopped = true;
          return null;
        }
        return response.ok ? response.json() : null;
      })
      .then(function (numbers) {
        if (numbers) {
          update(numbers);
        }
      })
      .catch(function () {
        // Offline for a moment: the next poll tries again.
      })
      .finally(function () {
        if (!stopped) {
          window.setTimeout(poll, every);
        }
      });
  }

  window.setTimeout(poll, every);
})();
