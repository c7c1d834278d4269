// Starts GOV.UK Frontend's components (the navigation's menu button, error summaries,
// character counts...) on every console page. A file, never an inline script: the
// Content-Security-Policy refuses those. Without JavaScript every page still works.
import { initAll } from "./vendor/govuk-frontend/govuk-frontend.min.js";

// What GOV.UK's page template does inline: mark the page as able to run the components.
document.body.classList.add("js-enabled", "govuk-frontend-supported");
initAll();
