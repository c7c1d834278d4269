"""The Results pages in Chromium: an analyst and an editor sign in, read a consultation's
results (charts drawn beside their tables), watch a count change when a new answer
arrives, download each format, and the page passes the accessibility scan."""

from __future__ import annotations

import io
import json
from pathlib import Path

import openpyxl
import pytest
from playwright.sync_api import Page, expect

from bot.console.access import Role
from bot.service import Service
from messages import Address, InboundMessage
from tests.browser import axe_check, screenshot
from tests.console.conftest import SignIn
from tests.console.results_support import IDEA, NEVER, answer, five_weekly_and_a_never, sms

pytestmark = pytest.mark.browser
CHARTS = Path(__file__).resolve().parents[2] / "bot/console/static/vendor/chartjs/chart.umd.min.js"
#: Long enough for a poll of the page's live numbers (every 5 s) on a busy machine.
LIVE_MS = 20_000


@pytest.fixture
def answered(service: Service) -> Service:
    five_weekly_and_a_never(service)
    return service


def open_results(page: Page) -> None:
    page.goto("/results")
    page.get_by_role("link", name="Central Park").click()
    expect(page.get_by_role("heading", name="Central Park", level=1)).to_be_visible()


def test_an_analyst_reads_the_results_and_sees_them_change(
    signed_in_page: SignIn, answered: Service
) -> None:
    page = signed_in_page(Role.ANALYST)
    open_results(page)
    visits = page.locator("#question-visits")
    row = visits.get_by_role("row", name="Every week")
    expect(row).to_contain_text("5")
    expect(row).to_contain_text("83.3%")
    # Free text is not for analysts.
    withheld = page.get_by_text("What people typed is shown to editors and admins only")
    expect(withheld.first).to_be_visible()
    expect(page.get_by_text(IDEA)).to_have_count(0)
    axe_check(page)
    screenshot(page, "results")

    # A citizen answers while the page is open: the counts follow, without a reload.
    answer(answered, sms(70), NEVER[:2])
    expect(page.locator('[data-live="responses"]')).to_have_text("7", timeout=LIVE_MS)
    never = visits.get_by_role("row", name="Never")
    expect(never).to_contain_text("28.6%", timeout=LIVE_MS)


@pytest.mark.skipif(not CHARTS.exists(), reason="Chart.js is not vendored yet (design work)")
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_each_chart_is_drawn_beside_its_table_and_follows_it(
    signed_in_page: SignIn, answered: Service
) -> None:
    page = signed_in_page(Role.ANALYST)
    open_results(page)
    canvas = page.locator("#question-visits canvas")
    expect(canvas).to_be_visible()
    data = "c => window.Chart.getChart(c).data.datasets[0].data"
    assert canvas.evaluate(data) == [5, 0, 0, 1]  # every week, every month, rarely, never
    # People are counted in whole numbers: no tick at 0.5 on the axis of counts.
    ticks = canvas.evaluate("c => window.Chart.getChart(c).scales.x.ticks.map(t => t.value)")
    assert ticks
    assert all(float(t).is_integer() for t in ticks), ticks
    answer(answered, sms(71), NEVER[:2])
    expect(page.locator('[data-live="responses"]')).to_have_text("7", timeout=LIVE_MS)
    assert canvas.evaluate(data) == [5, 0, 0, 2]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_an_analyst_downloads_each_format_without_free_text(
    signed_in_page: SignIn, answered: Service
) -> None:
    page = signed_in_page(Role.ANALYST)
    open_results(page)
    for label, check in (
        ("CSV", lambda data: data.decode().count("\n") == 7),
        ("JSON Lines", lambda data: len([json.loads(x) for x in data.splitlines()]) == 6),
        ("Excel (XLSX)", lambda data: _sheet_rows(data) == 7),
    ):
        with page.expect_download() as info:
            page.get_by_role("link", name=f"{label}, without free text").click()
        download = info.value
        path = download.path()
        data = path.read_bytes()
        assert check(data), label
        assert IDEA.encode() not in data
        assert download.suggested_filename.startswith("central-park-results-no-free-text.")
    expect(page.get_by_role("link", name="with free text")).to_have_count(0)


def _sheet_rows(data: bytes) -> int:
    book = openpyxl.load_workbook(io.BytesIO(data))
    rows = book["responses"].max_row
    book.close()
    return rows


def test_an_editor_reads_the_free_text_breaks_down_and_downloads_it(
    signed_in_page: SignIn, answered: Service
) -> None:
    page = signed_in_page(Role.EDITOR)
    open_results(page)
    # A breakdown by channel: one person on Telegram cannot be shown apart.
    page.get_by_label("Break down by").select_option(label="Channel")
    page.get_by_role("button", name="Show results").click()
    table = page.locator("#question-visits table.voxpop-results-breakdown")
    expect(table).to_contain_text("Other (small groups)")
    expect(table).not_to_contain_text("telegram")
    axe_check(page)
    screenshot(page, "results-breakdown")

    with page.expect_download() as info:
        page.get_by_role("link", name="CSV, with free text").click()
    assert info.value.path().read_bytes().decode().count(IDEA) == 5

    page.get_by_role("link", name="Read and search the 5 answers").click()
    expect(page.get_by_role("heading", name="One idea to make the park better?")).to_be_visible()
    expect(page.get_by_role("cell", name=IDEA)).to_have_count(5)
    page.get_by_label("Search the answers").fill("bench")
    page.get_by_role("button", name="Search").click()
    expect(page.locator("#answers-count")).to_have_text("5 answers contain “bench”.")
    page.get_by_label("Search the answers").fill("swings")
    page.get_by_role("button", name="Search").click()
    expect(page.locator("#answers-count")).to_have_text("0 answers contain “swings”.")
    axe_check(page)
    screenshot(page, "results-answers")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_each_date_of_the_filter_is_one_field_and_one_tab_stop(
    signed_in_page: SignIn, answered: Service
) -> None:
    page = signed_in_page(Role.ANALYST)
    open_results(page)
    first = page.get_by_label("From (the day responses began)")
    expect(page.locator("#filter-from-hint")).to_have_text("For example 2026-12-01 or 1/12/2026")
    first.focus()
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "filter-to"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") != "filter-to"
    # Typed by keyboard, as people write a day; a wrong one is named next to its field.
    first.fill("1/12/2030")
    page.get_by_label("To (inclusive)").fill("31 Nov 2030")
    page.get_by_role("button", name="Show results").click()
    expect(page.locator("#filter-to-error")).to_contain_text("Enter the last day as a date")
    expect(page.get_by_label("From (the day responses began)")).to_have_value("1/12/2030")
    expect(page.locator('[data-live="responses"]')).to_have_text("0")
    axe_check(page)
    screenshot(page, "results-filter-error")


def test_test_runs_from_the_simulator_can_be_included_and_the_page_says_so(
    signed_in_page: SignIn, answered: Service
) -> None:
    for n, text in enumerate(("PARK", "2")):
        message = InboundMessage(Address("sms", "+32470660001"), text, f"sim-{n}", answered.now())
        answered.receive(message, simulated=True)
    page = signed_in_page(Role.EDITOR)
    open_results(page)
    expect(page.get_by_text("6 responses")).to_be_visible()
    expect(page.get_by_text("Staff's 1 test run in the simulator is left out")).to_be_visible()
    box = page.get_by_label("Include test runs (simulator)")
    expect(box).not_to_be_checked()
    box.check()
    page.get_by_role("button", name="Show results").click()
    expect(page.locator("#test-runs-included")).to_contain_text("Test runs included")
    expect(page.get_by_text("7 responses")).to_be_visible()
    expect(page.get_by_label("Include test runs (simulator)")).to_be_checked()
    axe_check(page)
    screenshot(page, "results-test-runs")
    page.get_by_role("link", name="Show citizens' answers only").click()
    expect(page.get_by_text("6 responses")).to_be_visible()
    expect(page.locator("#test-runs-included")).to_have_count(0)
