import pytest
from playwright.sync_api import expect
from bot.staff.accounts import Role
from tests.console.conftest import SignIn

pytestmark = pytest.mark.browser


def test_probe(signed_in_page: SignIn) -> None:
    page = signed_in_page(Role.EDITOR)
    page.goto("/consultations/street-lighting")
    page.get_by_role("link", name="Try street-lighting in the simulator").click()
    page.get_by_label("Channel").select_option("telegram")
    page.get_by_role("button", name="Start", exact=True).click()
    question = page.locator(".msg-bot").last
    expect(question).to_contain_text("too dark at night?")
    page.screenshot(path="/tmp/t3/p1.png", full_page=True)
    question.get_by_role("button", name="2. No").click()
    scale = page.locator(".msg-bot").last
    expect(scale).to_contain_text("How safe")
    page.screenshot(path="/tmp/t3/p2.png", full_page=True)
    print(scale.inner_html())
