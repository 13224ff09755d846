"""The video list as a library (posters, watch and copy-link, live columns), the paused-transcoding
banner, money on the costs pages, the budget set from the dashboard, and accessibility and phone
width of the list, change, player and dashboard pages."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from media_library.models import Video
from tests.browser.conftest import PHONE_VIEWPORT, axe_violations, horizontal_overflow, login, screenshot
from tests.factories import make_cost_entry, make_media_file, make_stored_video, make_video
from transcoding.costs.budget import budget_engage_kill_switch
from transcoding.models import BudgetPolicy, CostAlert, TranscodeJob
from transcoding.services.jobs import transcode_enqueue
from unpuzzle.groups import FINANCE, INSTRUCTORS

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Django's messages, not the cost alert banner above them.
MESSAGES = ".messagelist:not(#cost-alert-banner)"
PAUSED = "Uploads are accepted; processing resumes when staff release it."
# Smallest chart text a phone reader is asked to read, in CSS pixels.
MIN_CHART_TEXT_PX = 10


def _wait_for_status(video: Video, status: str, *, timeout: float = 90) -> Video:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        video.refresh_from_db()
        if video.status == status:
            return video
        time.sleep(0.2)
    raise AssertionError(f"video {video.id} is {video.status!r} ({video.status_reason}), not {status!r}")


def _ready_video(owner, clip, *, title: str) -> Video:
    """A video transcoded for real by the task worker (poster and renditions included)."""
    video = make_stored_video(owner, clip)
    Video.objects.filter(pk=video.pk).update(title=title)
    transcode_enqueue(video=video)
    return _wait_for_status(video, Video.Status.READY)


def _row(page, video: Video):
    return page.locator("#result_list tbody tr", has=page.locator(f'.video-status[data-video-id="{video.id}"]'))


def _scaled_font_px(page, selector: str) -> list[float]:
    """Rendered font size of each SVG text matching ``selector``: its font-size times the SVG's scale."""
    return page.evaluate(
        """(selector) => Array.from(document.querySelectorAll(selector)).map((el) =>
            parseFloat(getComputedStyle(el).fontSize) * el.getScreenCTM().a)""",
        selector,
    )


def test_list_shows_posters_and_watch_and_copy_links(
    page, live_server, browser_settings, task_worker, make_member, clip_copy
):
    ines = make_member("ines", INSTRUCTORS)
    ready = _ready_video(ines, clip_copy("week1.mp4"), title="Week 1: thermodynamics")
    assert ready.poster_key
    waiting = make_video(owner=ines, media_file=make_media_file(owner=ines), title="Week 2: not transcoded yet")

    login(page, "ines")
    page.goto("/admin/media_library/video/")
    thumb = _row(page, ready).locator("img.video-thumb")
    assert thumb.get_attribute("loading") == "lazy"
    assert thumb.get_attribute("alt") == "Poster of Week 1: thermodynamics"
    thumb.scroll_into_view_if_needed()
    page.wait_for_function("(img) => img.complete && img.naturalWidth > 0", arg=thumb.element_handle())
    assert _row(page, waiting).locator("img").count() == 0
    assert _row(page, waiting).locator(".video-thumb-none").get_attribute("aria-label") == "No poster yet"
    assert axe_violations(page) == []
    screenshot(page, "library-list")

    player_url = f"{live_server.url}/videos/{ready.id}/"
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    row = _row(page, ready)
    row.locator("button.video-copy-link").click()
    row.locator(".video-copy-status", has_text="Copied").wait_for()
    assert page.evaluate("() => navigator.clipboard.readText()") == player_url

    row.locator("a.video-watch").click()
    page.wait_for_url(player_url)
    page.locator("video").wait_for()
    assert axe_violations(page) == []
    screenshot(page, "library-player")

    page.goto(f"/admin/media_library/video/{ready.id}/change/")
    tools = page.locator(".object-tools")
    assert tools.locator("a.video-watch").get_attribute("href") == f"/videos/{ready.id}/"
    tools.locator("button.video-copy-link").click()
    tools.locator(".video-copy-status", has_text="Copied").wait_for()
    assert page.evaluate("() => navigator.clipboard.readText()") == player_url
    assert axe_violations(page) == []
    screenshot(page, "library-change")

    page.set_viewport_size(PHONE_VIEWPORT)
    for url in (
        "/admin/media_library/video/",
        f"/admin/media_library/video/{ready.id}/change/",
        f"/videos/{ready.id}/",
    ):
        page.goto(url)
        assert horizontal_overflow(page) == 0, url
        assert axe_violations(page) == [], url
    screenshot(page, "library-player-phone")


def test_copy_link_falls_back_without_the_clipboard_api(page, live_server, make_member):
    ines = make_member("ines", INSTRUCTORS)
    video = make_video(owner=ines, media_file=make_media_file(owner=ines), title="Week 3")
    # Plain-http sites other than localhost have no navigator.clipboard: the link is selected for copying by hand.
    page.add_init_script("Object.defineProperty(navigator, 'clipboard', {value: undefined})")
    login(page, "ines")
    page.goto("/admin/media_library/video/")
    row = _row(page, video)
    row.locator("button.video-copy-link").click()
    status = row.locator(".video-copy-status")
    status.wait_for()
    assert status.inner_text() in ("Copied", "Press Ctrl+C to copy")
    assert page.evaluate("() => window.getSelection().toString()") == f"{live_server.url}/videos/{video.id}/"


def test_rendition_count_and_attempt_update_without_reload(page, browser_settings, task_worker, make_member, clip_copy):
    ines = make_member("ines", INSTRUCTORS)
    video = make_stored_video(ines, clip_copy("week4.mp4"))
    login(page, "ines")
    page.goto("/admin/media_library/video/")
    row = _row(page, video)
    assert row.locator(".video-renditions").inner_text() == "0"
    page.evaluate("() => { window.notReloaded = true; }")

    # A worker's second run of a job, halfway (a real run of this clip is over between two polls).
    job = TranscodeJob.objects.create(video=video, status=TranscodeJob.Status.RUNNING, attempts=2, progress=40)
    row.locator(".video-job", has_text="running 40% (attempt 2)").wait_for(timeout=30_000)
    TranscodeJob.objects.filter(pk=job.pk).update(status=TranscodeJob.Status.CANCELLED)
    row.locator(".video-job", has_text="cancelled").wait_for(timeout=30_000)

    transcode_enqueue(video=video)
    row.locator(".video-status", has_text="Ready").wait_for(timeout=90_000)
    row.locator(".video-renditions", has_text="1").wait_for()
    assert row.locator(".video-job").inner_text() == "succeeded"
    assert page.evaluate("() => window.notReloaded") is True


def test_user_links_lead_somewhere(page, make_member):
    make_member("ines", INSTRUCTORS)
    login(page, "ines")
    hrefs = page.eval_on_selector_all("#user-tools a", "(links) => links.map((a) => a.getAttribute('href'))")
    assert hrefs
    for href in hrefs:
        response = page.goto(href)
        assert response.status < 400, f"{href}: {response.status}"
        page.goto("/admin/")


def test_instructors_are_told_transcoding_is_paused_without_finance_links(page, make_member, console):
    make_member("ines", INSTRUCTORS)
    fiona = make_member("fiona", FINANCE)
    budget_engage_kill_switch(by=fiona, reason="invoice review")

    login(page, "ines")
    for url in ("/admin/", "/admin/media_library/video/upload/"):
        page.goto(url)
        assert page.locator("#transcoding-paused-banner").inner_text() == PAUSED, url
        assert page.locator("#cost-alert-banner").count() == 0, url
        assert page.locator("a[href*='costdashboard']").count() == 0, url
    screenshot(page, "library-paused-upload-page")

    page.context.clear_cookies()
    login(page, "fiona")
    assert page.locator("#transcoding-paused-banner").inner_text() == PAUSED
    page.locator("#cost-alert-banner a[href*='costdashboard']").click()
    page.wait_for_url("**/admin/transcoding/costdashboard/")


def test_money_is_formatted_and_staff_set_the_budget_from_the_dashboard(page, make_member, console):
    make_member("fiona", FINANCE)
    ines = make_member("ines", INSTRUCTORS)
    video = make_video(owner=ines, media_file=make_media_file(owner=ines), title="Week 5")
    make_cost_entry(kind="transcode", quantity="579.67", unit_price="0.005", amount="2.89835", video=video, owner=ines)

    login(page, "fiona")
    page.goto("/admin/transcoding/costdashboard/")
    assert page.locator("#costs-mtd").inner_text() == "$2.90"
    content = page.locator("#content-main").inner_text()
    assert "of $100.00 budget" in content
    assert "2.898" not in content and "$2.90" in page.locator("#costs-top-videos").inner_text()

    console.allow(r"(http|status of) 400.*/costdashboard/budget/")  # the refused form, shown again with its error
    form = page.locator("#budget-form")
    form.locator("input[name=monthly_budget_usd]").fill("-1")
    form.locator("input[type=submit]").click()
    assert "Ensure this value is greater than or equal to 0" in page.locator("#budget-form .errorlist").inner_text()
    assert BudgetPolicy.objects.get().monthly_budget_usd == Decimal("100.00")
    screenshot(page, "library-budget-error")

    page.locator("#budget-form input[name=monthly_budget_usd]").fill("2.50")
    page.locator("#budget-form input[type=submit]").click()
    page.locator("#costs-switch", has_text="ENGAGED").wait_for()
    assert "Monthly budget set to $2.50." in page.locator(MESSAGES).inner_text()
    policy = BudgetPolicy.objects.get()
    assert policy.monthly_budget_usd == Decimal("2.50") and policy.kill_switch_auto
    assert CostAlert.objects.filter(kind=CostAlert.Kind.BUDGET_100).exists(), "lowering below spend alerts"
    assert "monthly budget reached: $2.90 spent of $2.50" in page.locator("#costs-switch-card").inner_text()
    assert "Month-to-date spend is $2.90 of a $2.50 budget" in CostAlert.objects.get(kind="budget_100").message
    assert axe_violations(page) == []
    screenshot(page, "library-dashboard")

    page.locator("#budget-form input[name=monthly_budget_usd]").fill("10")
    page.locator("#budget-form input[type=submit]").click()
    page.locator("#costs-switch", has_text="released").wait_for()

    page.goto("/admin/transcoding/costlogentry/")
    ledger = page.locator("#result_list").inner_text()
    assert "$2.90" in ledger and "$0.005" in ledger and "2.898350" not in ledger
    page.goto("/admin/transcoding/budgetpolicy/")
    assert "$10.00" in page.locator("#result_list").inner_text()

    page.set_viewport_size(PHONE_VIEWPORT)
    page.goto("/admin/transcoding/costdashboard/")
    sizes = _scaled_font_px(page, "#costs-chart svg text")
    assert sizes and min(sizes) >= MIN_CHART_TEXT_PX, sizes
    assert horizontal_overflow(page) == 0
    assert axe_violations(page) == []
    screenshot(page, "library-dashboard-phone")


def test_budget_edit_in_the_admin_form_engages_and_releases_the_switch(page, make_member):
    make_member("fiona", FINANCE)
    make_cost_entry(kind="transcode", quantity=1, unit="minute", unit_price="3.898", amount="3.898")
    policy = BudgetPolicy.objects.create(monthly_budget_usd=Decimal("100.00"))

    login(page, "fiona")
    page.goto(f"/admin/transcoding/budgetpolicy/{policy.pk}/change/")
    page.fill("#id_monthly_budget_usd", "3.50")
    page.click("input[name=_save]")
    page.wait_for_url("**/admin/transcoding/budgetpolicy/")
    policy.refresh_from_db()
    assert policy.kill_switch_engaged and policy.kill_switch_auto
    assert "Budget $3.50/month, kill switch engaged" in page.locator("#result_list").inner_text()
    assert "Costs at 100% of the" in page.locator("#cost-alert-banner").inner_text()

    page.goto(f"/admin/transcoding/budgetpolicy/{policy.pk}/change/")
    page.fill("#id_monthly_budget_usd", "100")
    page.click("input[name=_save]")
    page.wait_for_url("**/admin/transcoding/budgetpolicy/")
    policy.refresh_from_db()
    assert not policy.kill_switch_engaged
    assert "kill switch released" in page.locator("#result_list").inner_text()
