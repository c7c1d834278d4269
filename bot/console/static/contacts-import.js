// The import's progress bar: polls the JSON beside the page and moves the <progress>
// element; when the step ends (checked, done...), reloads the page, which shows the result.
// Without script, the page says to reload it (in <noscript>).
(function () {
  "use strict";
  var box = document.querySelector("[data-progress-url]");
  if (!box) {
    return;
  }
  var bar = box.querySelector("progress");
  var text = box.querySelector("[data-progress-text]");
  var live = box.querySelector("[data-progress-live]");
  var quarter = -1;
  var url = box.getAttribute("data-progress-url");
  var status = box.getAttribute("data-status");
  var delay = 500;

  function poll() {
    fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (response) {
        if (window.voxpopSignedOut(response)) {
          return null; // signed out: stop; the import goes on regardless
        }
        if (!response.ok) {
          throw new Error("status " + response.status);
        }
        return response.json();
      })
      .then(function (state) {
        if (!state) {
          return;
        }
        if (state.status !== status) {
          window.location.reload();
          return;
        }
        bar.value = state.percent;
        bar.textContent = state.percent + "%";
        text.textContent =
          state.percent + "% (row " + state.row.toLocaleString("en") +
          " of " + state.rows.toLocaleString("en") + ")";
        // Screen readers hear each quarter, not every half second.
        if (Math.floor(state.percent / 25) !== quarter) {
          quarter = Math.floor(state.percent / 25);
          live.textContent = state.percent + "% done";
        }
        window.setTimeout(poll, delay);
      })
      .catch(function () {
        // A network hiccup: try again a little later; the import goes on regardless.
        window.setTimeout(poll, delay * 4);
      });
  }
  window.setTimeout(poll, delay);
})();
