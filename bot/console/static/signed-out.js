// When a page's own polling finds its session ended (the server answers 401), say so at the
// top of the page in plain words, with a link to sign in and come back here. Polls do not
// keep a session alive (docs/console.md, "Sessions"), so an unattended page ends up here.
// Loaded by the pages that poll, before their own scripts, which call
// window.voxpopSignedOut(response): true when the session has ended (stop polling then).
(function () {
  "use strict";
  var shown = false;

  function show(body) {
    var main = document.getElementById("main-content");
    if (shown || !main) return;
    shown = true;
    var here = window.location.pathname + window.location.search;
    var link = document.createElement("a");
    link.className = "govuk-notification-banner__link";
    link.href = (body.sign_in || "/login") + "?next=" + encodeURIComponent(here);
    link.textContent = body.message || "You have been signed out, sign in again.";
    var line = document.createElement("p");
    line.className = "govuk-notification-banner__heading";
    line.appendChild(link);
    var content = document.createElement("div");
    content.className = "govuk-notification-banner__content";
    content.appendChild(line);
    var title = document.createElement("h2");
    title.className = "govuk-notification-banner__title";
    title.id = "signed-out-title";
    title.textContent = "Important";
    var header = document.createElement("div");
    header.className = "govuk-notification-banner__header";
    header.appendChild(title);
    var banner = document.createElement("div");
    banner.className = "govuk-notification-banner";
    banner.id = "signed-out";
    banner.setAttribute("role", "alert");
    banner.setAttribute("aria-labelledby", "signed-out-title");
    banner.tabIndex = -1;
    banner.appendChild(header);
    banner.appendChild(content);
    main.insertBefore(banner, main.firstChild);
    // "Signed in as" and "Sign out" are no longer true.
    var account = document.querySelector(".voxpop-account");
    if (account) account.hidden = true;
    // Keyboard and screen reader users land on it: nothing else on the page works now.
    banner.focus();
  }

  window.voxpopSignedOut = function (response) {
    if (response.status !== 401) return false;
    response.json().then(show, function () { show({}); });
    return true;
  };
})();
