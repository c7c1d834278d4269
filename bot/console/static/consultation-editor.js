// The consultation editor (consultations/new.html): keeps the line numbers beside the text
// box in step while typing, and makes each "Line N" link of the error summary put the caret
// on that line of the box. Without this script the numbers are the server's and the links
// lead to the line in the listing under the form: the page works either way.
(function () {
  "use strict";
  var box = document.querySelector("textarea[data-editor]");
  var gutter = document.querySelector("[data-editor-gutter]");
  if (!box || !gutter) return;
  var MIN_ROWS = 18;
  var errorLines = (box.getAttribute("data-error-lines") || "").split(" ").filter(Boolean);
  var shown = 0;

  function lineCount() {
    return box.value.replace(/\n$/, "").split("\n").length;
  }

  // The box grows with the text so that it never scrolls inside: its lines stay level
  // with their numbers.
  function update() {
    var count = lineCount();
    box.rows = Math.max(count + 1, MIN_ROWS);
    var wanted = Math.max(count, MIN_ROWS);
    if (wanted === shown) return;
    gutter.textContent = "";
    for (var n = 1; n <= wanted; n++) {
      var span = document.createElement("span");
      span.textContent = String(n);
      if (errorLines.indexOf(String(n)) !== -1) span.className = "voxpop-editor__error";
      gutter.appendChild(span);
      if (n < wanted) gutter.appendChild(document.createTextNode("\n"));
    }
    shown = wanted;
  }

  // Where line ``line`` (from 1) starts and ends in the box's text.
  function lineRange(line) {
    var text = box.value;
    var start = 0;
    for (var n = 1; n < line; n++) {
      var next = text.indexOf("\n", start);
      if (next === -1) return null;
      start = next + 1;
    }
    var end = text.indexOf("\n", start);
    return [start, end === -1 ? text.length : end];
  }

  function goToLine(line) {
    var range = lineRange(line);
    if (!range) return false;
    box.focus({ preventScroll: true });
    box.setSelectionRange(range[0], range[0]);
    // Scroll the page (the box does not scroll) so the line shows, a little below the top.
    var style = window.getComputedStyle(box);
    var lineHeight = parseFloat(style.lineHeight) || 24;
    var top = box.getBoundingClientRect().top + window.scrollY + parseFloat(style.paddingTop);
    window.scrollTo(0, Math.max(top + (line - 1) * lineHeight - window.innerHeight / 3, 0));
    var marks = gutter.querySelectorAll("span");
    for (var i = 0; i < marks.length; i++) {
      marks[i].classList.toggle("voxpop-editor__current", i === line - 1);
    }
    return true;
  }

  // Capture, so it runs before GOV.UK's error summary handler (which only knows fields).
  document.addEventListener(
    "click",
    function (event) {
      var link = event.target.closest ? event.target.closest("a[data-editor-line]") : null;
      if (!link) return;
      if (goToLine(parseInt(link.getAttribute("data-editor-line"), 10))) {
        event.preventDefault();
        event.stopPropagation();
      }
    },
    true
  );

  box.addEventListener("input", update);
  update();
})();
