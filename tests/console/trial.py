"""A throwaway blueprint for the layout's tests: a page that uses the layout and the design
system as the console's pages do (a form, an error summary, a table...), and views that fail
in each way the error pages answer. Only the tests register it.
"""

from __future__ import annotations

from flask import Blueprint, Flask, abort, flash, render_template_string, request
from werkzeug.exceptions import TooManyRequests

from bot.console.access import Role, requires

#: A phone number a bug's message carries in the tests: it must reach no log and no page.
PHONE = "+32470123456"


PAGE = """
{% extends "console/base.html" %}
{% from "console/macros.html" import page_heading, summary, data_table, masked, back_link %}
{% from "govuk_frontend_jinja/components/error-summary/macro.html" import govukErrorSummary %}
{% from "govuk_frontend_jinja/components/input/macro.html" import govukInput %}
{% from "govuk_frontend_jinja/components/character-count/macro.html" import govukCharacterCount %}
{% from "govuk_frontend_jinja/components/button/macro.html" import govukButton %}
{% block title %}{{ "Error: " if errors }}Trial page{% endblock %}
{% block beforeContent %}{{ back_link("/trial/page") }}{% endblock %}
{% block content %}
<div class="govuk-grid-row">
  <div class="govuk-grid-column-two-thirds">
    {% if errors %}
    {{ govukErrorSummary({"titleText": "There is a problem", "errorList": [
        {"text": "Enter a name for the push", "href": "#name"}]}) }}
    {% endif %}
    {{ page_heading("Trial page", caption="Design system") }}
    {{ summary([("Consultation", "Central park"), ("Contact", masked(phone)),
                ("Answers", 1234)]) }}
    <form method="post" action="/trial/page" novalidate>
      <input type="hidden" name="csrf_token" value="{{ csrf_token() }}">
      {{ govukInput({"label": {"text": "Name of the push"}, "id": "name", "name": "name",
          "errorMessage": {"text": "Enter a name for the push"} if errors else none}) }}
      {{ govukCharacterCount({"label": {"text": "Message"}, "id": "message",
          "name": "message", "maxlength": 160}) }}
      {{ govukButton({"text": "Save"}) }}
    </form>
    {{ data_table("Answers by channel", ["Channel", "Answers", "Share"],
                  [["SMS", "812", "65.8%"], ["Telegram", "422", "34.2%"]], numeric=(1, 2)) }}
  </div>
</div>
{% endblock %}
"""


def trial_blueprint() -> Blueprint:
    bp = Blueprint("trial", __name__, url_prefix="/trial")

    @bp.route("/page", methods=["GET", "POST"])
    def page() -> str:
        errors = request.method == "POST" and not request.form.get("name")
        if request.method == "POST" and not errors:
            flash("Push saved", "success")
        return render_template_string(PAGE, errors=errors, phone=PHONE)

    @bp.get("/untitled")
    def untitled() -> str:
        return render_template_string(
            '{% extends "console/base.html" %}{% block content %}<h1>Hi</h1>{% endblock %}'
        )

    @bp.get("/editors-only")
    @requires(Role.EDITOR)
    def editors_only() -> str:
        return "for editors"

    @bp.get("/boom")
    def boom() -> str:
        # What a citizen sent, as a bug's message may carry it: from outside, not this file.
        who, text = request.args.get("who", PHONE), request.args.get("text", "")
        raise RuntimeError(f"{who} wrote: {text}")

    @bp.post("/only-post")
    def only_post() -> str:
        return "posted"

    @bp.route("/upload", methods=["POST"])
    def upload() -> str:
        return str(len(request.form))

    @bp.get("/abort/<int:code>")
    def aborted(code: int) -> str:
        if code == 429:
            raise TooManyRequests(retry_after=60)
        abort(code)

    return bp


def with_trial(app: Flask) -> Flask:
    """``app`` with the trial pages."""
    app.register_blueprint(trial_blueprint())
    return app
