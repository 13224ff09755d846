"""Chromium (Debian's package) driven by Playwright against the live server, with a task worker.

The worker: django-q2 runs each task in sync mode, but in one background thread instead of
inside the request that queued it, so the page sees the states a real cluster produces
(uploaded, queued, processing with progress, ready) while finalization and transcoding run
for real (ffprobe, ffmpeg, storage).
"""

from __future__ import annotations

import os
import re
import shutil
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connections

from tests.clips import make_clip
from tests.factories import make_instructor
from unpuzzle.groups import FINANCE, INSTRUCTORS

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "pw-for-browser-tests-1"
TRANSCODE_PICKUP_DELAY_S = 2
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"


@pytest.fixture(scope="module")
def chromium():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (scripts/test.sh installs it)")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop on this thread while it runs; Django's ORM calls
    # from the test body are still synchronous, so its async-context guard does not apply. Module
    # scope: the loop and this variable are gone before other tests (and subprocesses) run.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            # Playwright gives every launch a fresh temporary profile (user-data dir).
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def browser_settings(settings):
    """A small, fast ladder for the live server (same process, so the server thread sees it)."""
    settings.HLS_LADDER = "240p:300k"
    settings.HLS_SEGMENT_SECONDS = 2
    return settings


@pytest.fixture
def task_worker(monkeypatch):
    """Run queued django-q2 tasks in sync mode on one background thread, in order."""
    from django_q.tasks import async_task as django_q_async_task

    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="q-worker")

    def run(func, args, kwargs):
        if func.startswith("transcoding."):
            # A worker is rarely idle the moment a job is queued; the page should show "queued".
            time.sleep(TRANSCODE_PICKUP_DELAY_S)
        try:
            django_q_async_task(func, *args, sync=True, **kwargs)
        finally:
            connections.close_all()

    def enqueue(func, *args, **kwargs):
        executor.submit(run, func, args, kwargs)
        return uuid.uuid4().hex

    monkeypatch.setattr("uploads.services.finalize.async_task", enqueue)
    monkeypatch.setattr("transcoding.services.jobs.async_task", enqueue)
    yield executor
    # Finish what is running before the test database is flushed.
    executor.shutdown(wait=True, cancel_futures=True)


@pytest.fixture
def groups(transactional_db):
    call_command("setup_groups", verbosity=0)
    from django.contrib.auth.models import Group

    return {name: Group.objects.get(name=name) for name in (INSTRUCTORS, FINANCE)}


@pytest.fixture
def make_member(groups):
    def make(username: str, group: str):
        user = make_instructor(username=username, password=PASSWORD)
        user.groups.add(groups[group])
        return user

    return make


class ConsoleLog:
    """Console errors and uncaught page errors; expected ones are allowed by pattern."""

    def __init__(self):
        self.errors: list[str] = []
        self.allowed: list[re.Pattern] = []

    def watch(self, page):
        page.on(
            "console",
            lambda message: (
                message.type == "error"
                and self.errors.append(f"console: {message.text} ({message.location.get('url')})")
            ),
        )
        page.on("pageerror", lambda error: self.errors.append(f"pageerror: {error}"))
        # Names the URL behind Chromium's bare "Failed to load resource" console lines.
        page.on(
            "response",
            lambda response: (
                response.status >= 400
                and self.errors.append(f"http {response.status} {response.request.method} {response.url}")
            ),
        )

    def allow(self, pattern: str):
        self.allowed.append(re.compile(pattern))

    def unexpected(self) -> list[str]:
        return [e for e in self.errors if not any(p.search(e) for p in self.allowed)]


@pytest.fixture
def console():
    log = ConsoleLog()
    yield log
    assert log.unexpected() == [], "browser console errors"


@pytest.fixture
def page(chromium, live_server, console):
    context = chromium.new_context(base_url=live_server.url, viewport={"width": 1366, "height": 900})
    context.set_default_timeout(20_000)
    page = context.new_page()
    console.watch(page)
    yield page
    context.close()


def login(page, username: str, password: str = PASSWORD) -> None:
    page.goto("/admin/login/?next=/admin/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/")


def screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


@pytest.fixture(scope="session")
def lecture_clip(tmp_path_factory) -> Path:
    """A 10 s 320x180 H.264/AAC clip, as an instructor would upload (small, so the suite stays fast)."""
    directory = tmp_path_factory.mktemp("browser-clips")
    return make_clip(directory / "week1-lecture.mp4", width=320, height=180, duration=10.0, fps=25)


@pytest.fixture
def clip_copy(lecture_clip, tmp_path):
    """A private copy (a fresh file per test, so per-test fingerprints and sha256 duplicates do not mix)."""

    def copy(name: str) -> Path:
        target = tmp_path / name
        shutil.copyfile(lecture_clip, target)
        return target

    return copy


AXE_JS = Path(__file__).resolve().parents[1] / "js" / "node_modules" / "axe-core" / "axe.min.js"
PHONE_VIEWPORT = {"width": 390, "height": 844}


def axe_violations(page, *, impacts: tuple[str, ...] = ("serious", "critical")) -> list[str]:
    """Run axe-core (npm, tests/js) on the page as it is now; the violations of the given impacts,
    one line each (rule, impact, the first offending elements)."""
    if not AXE_JS.exists():
        pytest.fail(f"{AXE_JS} is missing: (cd tests/js && npm ci) (scripts/test.sh runs it)")
    page.add_script_tag(path=str(AXE_JS))
    results = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes'][:3]]}"
        for v in results["violations"]
        if v["impact"] in impacts
    ]


def horizontal_overflow(page) -> int:
    """How many CSS pixels the page is wider than the viewport (0: nothing scrolls sideways)."""
    return page.evaluate("() => document.documentElement.scrollWidth - document.documentElement.clientWidth")
