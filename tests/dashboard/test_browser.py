"""The dashboard served by `streamlit run` and driven by a real Chromium (Debian's, no download).

Skipped on a machine without Chromium; under CI=true a missing Chromium or Playwright fails the
test (the `browser` marker and `require_module`, see tests/support.py).
"""

from __future__ import annotations

import re
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support import (
    REPO_ROOT,
    ManagedProcess,
    ProcessGroup,
    free_port,
    require_chromium,
    require_module,
)

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]
pytestmark = [pytest.mark.browser, pytest.mark.timeout(240)]
FAULTS = [
    ("fault", '{at_s = 3, kind = "crash", target = "primary", duration_s = 1}'),
    ("fault", '{at_s = 6, kind = "partition", target = "server", duration_s = 1.5}'),
]


def wait_for_health(url: str, proc: ManagedProcess, timeout_s: float = 60.0) -> None:
    """Wait until Streamlit's health endpoint answers "ok"; fail early if the server exits."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"streamlit exited with {proc.returncode}:\n{proc.log_tail()}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200 and response.read().strip() == b"ok":
                    return
        except OSError:
            pass
        time.sleep(0.2)
    pytest.fail(f"streamlit not healthy after {timeout_s} s:\n{proc.log_tail()}")


@pytest.fixture(scope="module")
def dashboard_url(session_process_group: ProcessGroup) -> str:
    """`streamlit run dashboard/app.py` on a free loopback port, shared by this module's tests."""
    port = free_port()
    proc = session_process_group.spawn(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            "dashboard/app.py",
            "--server.headless",
            "true",
            "--server.fileWatcherType",
            "none",
            "--server.port",
            str(port),
            "--server.address",
            "127.0.0.1",
            "--browser.gatherUsageStats",
            "false",
        ],
        cwd=REPO_ROOT,
    )
    url = f"http://127.0.0.1:{port}"
    wait_for_health(url, proc)
    return url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One Chromium for the module (each test gets its own context: a fresh session)."""
    require_module("playwright", "driving Chromium from the tests")
    chromium = require_chromium("the dashboard browser test")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            yield instance
        finally:
            instance.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh page (1400 x 1000); fails the test on any uncaught page error."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    try:
        tab = context.new_page()
        errors: list[str] = []
        tab.on("pageerror", lambda exc: errors.append(str(exc)))
        yield tab
        assert not errors, errors
    finally:
        context.close()


def charts(page: Any) -> Any:
    return page.locator('[data-testid="stPlotlyChart"] .js-plotly-plot')


def titles(page: Any) -> list[str]:
    return [t.strip() for t in page.locator(".gtitle").all_text_contents()]


def titles_once(
    page: Any, shown: Callable[[list[str]], bool], timeout_s: float = 30.0
) -> list[str]:
    """The chart titles, once `shown(titles)` holds (or as they are at the deadline).

    Plotly draws each chart's title after its div exists: a chart count reached is not all
    titles drawn, and a loaded machine can stretch that gap. The caller asserts on the result.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        current = titles(page)
        if shown(current) or time.monotonic() > deadline:
            return current
        page.wait_for_timeout(100)


def when_idle(page: Any, timeout_ms: int = 90_000) -> Any:
    """Wait until the app's script run has finished, then return the page (to click on).

    A click that lands while a run is still going asks Streamlit to interrupt that run and rerun
    with the click; on a loaded machine such a click was seen to start nothing (the chart wait
    timed out with no run in sight). Streamlit's own browser tests wait for this state before
    interacting, for the same reason.
    """
    from playwright.sync_api import expect

    idle = page.locator('[data-testid="stApp"][data-test-script-state="notRunning"]')
    expect(idle).to_have_count(1, timeout=timeout_ms)
    return page


def assert_no_error(page: Any) -> None:
    assert page.locator('[data-testid="stException"]').count() == 0
    assert page.locator('[data-testid="stAlertContentError"]').count() == 0


def full_screenshot(page: Any, path: Path, height: int = 2200) -> None:
    """Streamlit scrolls inside its main container: a tall viewport shows the whole page."""
    page.set_viewport_size({"width": 1400, "height": height})
    page.wait_for_timeout(500)  # let plotly redraw at the new size
    page.screenshot(path=str(path))
    page.set_viewport_size({"width": 1400, "height": 1000})


def test_playground_runs_the_default_scenario_in_chromium(
    dashboard_url: str, page: Any, artifacts_dir: Path
) -> None:
    from playwright.sync_api import expect

    page.goto(dashboard_url, wait_until="domcontentloaded")  # Playground is the default
    run_button = page.get_by_role("button", name="Run")
    expect(run_button).to_be_visible(timeout=60_000)
    scenario = page.get_by_role("combobox", name="Scenario")
    expect(scenario).to_have_value(re.compile(r"^queue_mm1 — "))
    when_idle(page)
    run_button.click()

    expect(charts(page)).to_have_count(4, timeout=90_000)
    expect(page.locator(".main-svg .gtitle").first).to_be_visible(timeout=30_000)

    def all_four(shown: list[str]) -> bool:
        return (
            "What happened to every message" in shown
            and any(t.startswith("Produce -> ack latency") for t in shown)
            and "Throughput" in shown
            and "queue_length" in shown
        )

    shown = titles_once(page, all_four)
    assert "What happened to every message" in shown
    assert any(t.startswith("Produce -> ack latency") for t in shown), shown
    assert "Throughput" in shown and "queue_length" in shown
    expect(page.locator('[data-testid="stMetricLabel"]')).to_have_count(4, timeout=30_000)
    labels = [m.lower() for m in page.locator('[data-testid="stMetricLabel"]').all_inner_texts()]
    assert labels == ["produced", "delivered", "lost", "duplicates"]
    for name in ("summary.json", "timeseries.csv", "timeseries.parquet", "scenario.toml"):
        expect(page.get_by_role("button", name=name)).to_be_visible(timeout=30_000)
    # every page in the navigation, and no legacy pages/ listing
    expect(page.locator('[data-testid="stSidebarNav"] a')).to_have_count(6, timeout=30_000)
    nav = page.locator('[data-testid="stSidebarNav"] a').all_inner_texts()
    assert [n.split("\n")[-1].strip() for n in nav] == [
        "Playground",
        "Lessons",
        "Compare",
        "Timeline",
        "Decision guide",
        "Sweeps",
    ]
    # the run is in the URL: a reload (a shared link) shows it again
    expect(page).to_have_url(re.compile(r"scenario=queue_mm1&seed=1"), timeout=30_000)
    assert_no_error(page)
    full_screenshot(page, artifacts_dir / "playground.png")

    # an invalid value: the schema's message next to the form, and no traceback
    rate = page.get_by_role("spinbutton", name="rate_per_s")
    rate.fill("0")
    rate.press("Enter")
    when_idle(page).get_by_role("button", name="Run").click()
    error = page.locator('[data-testid="stAlertContentError"]')
    expect(error).to_contain_text("workload.rate_per_s", timeout=30_000)
    expect(charts(page)).to_have_count(0, timeout=30_000)
    page.screenshot(path=str(artifacts_dir / "playground-invalid.png"))
    assert page.locator('[data-testid="stException"]').count() == 0


def test_lessons_page_runs_a_lesson_from_its_link(
    dashboard_url: str, page: Any, artifacts_dir: Path
) -> None:
    from playwright.sync_api import expect

    page.goto(f"{dashboard_url}/lessons?lesson=queue_mm1", wait_until="domcontentloaded")
    expect(page.get_by_role("heading", name="Lessons")).to_be_visible(timeout=60_000)
    expect(page.get_by_text("The claims it checks", exact=True)).to_be_visible(timeout=30_000)
    when_idle(page).get_by_role("button", name="Run this lesson").click()
    expect(charts(page)).to_have_count(2, timeout=90_000)
    expect(page.get_by_text(re.compile(r"Expectations: \d+ of \d+ held"))).to_be_visible(
        timeout=30_000
    )
    shown = titles_once(page, lambda shown: "What happened to every message" in shown)
    assert "What happened to every message" in shown, shown
    assert_no_error(page)
    full_screenshot(page, artifacts_dir / "lessons.png")


def test_compare_page_runs_its_default_variants_side_by_side(
    dashboard_url: str, page: Any, artifacts_dir: Path
) -> None:
    from playwright.sync_api import expect

    # compose variants of the small queue scenario (built-in comparisons run the full models)
    page.goto(f"{dashboard_url}/compare?scenario=queue_mm1", wait_until="domcontentloaded")
    expect(page.get_by_role("heading", name="Compare")).to_be_visible(timeout=60_000)
    when_idle(page).get_by_role("button", name="Run").click()
    expect(charts(page)).to_have_count(2, timeout=90_000)
    wanted = ("What happened to every message, by variant", "Side by side on one time axis")
    shown = titles_once(page, lambda shown: all(w in shown for w in wanted))
    assert "What happened to every message, by variant" in shown, shown
    assert "Side by side on one time axis" in shown, shown
    expect(page.get_by_text(re.compile(r"Expectations: 1 of 1 held"))).to_be_visible(timeout=30_000)
    assert_no_error(page)
    full_screenshot(page, artifacts_dir / "compare.png", height=2600)


def test_timeline_shows_the_cluster_at_a_moment_and_steps_through_changes(
    dashboard_url: str, page: Any, artifacts_dir: Path
) -> None:
    from playwright.sync_api import expect

    page.goto(f"{dashboard_url}/timeline", wait_until="domcontentloaded")
    expect(page.get_by_role("heading", name="Timeline")).to_be_visible(timeout=60_000)
    when_idle(page).get_by_role("button", name="Show").click()
    expect(charts(page)).to_have_count(2, timeout=90_000)
    assert_no_error(page)
    full_screenshot(page, artifacts_dir / "timeline-default.png")

    # a link to a moment of a run with faults: the crashed server is drawn crashed
    query = urllib.parse.urlencode(
        [
            ("scenario", "queue_mm1"),
            ("seed", "5"),
            ("set", "scenario.duration_s=10"),
            *FAULTS,
            ("t", "3.5"),
        ]
    )
    page.goto(f"{dashboard_url}/timeline?{query}", wait_until="domcontentloaded")
    expect(page.locator(".gtitle", has_text="Cluster at t = 3.500 s")).to_be_visible(timeout=90_000)
    expect(page.locator("text=crashed").first).to_be_visible(timeout=30_000)
    full_screenshot(page, artifacts_dir / "timeline-crash.png")
    # the next change: the restart
    when_idle(page).locator(".st-key-timeline-forward button").first.click()
    expect(page.locator(".gtitle", has_text="Cluster at t = 4.000 s").first).to_be_visible(
        timeout=30_000
    )
    # play runs in the browser (a fragment on a timer): t moves on by itself until paused
    page.locator(".st-key-timeline-play button").first.click()
    later = re.compile(r"Cluster at t = (4\.(0[1-9]|[1-9])|[5-9]\.)")
    expect(page.locator(".gtitle", has_text=later).first).to_be_visible(timeout=30_000)
    page.locator(".st-key-timeline-play button").first.click()
    assert_no_error(page)


def test_sweeps_page_runs_a_small_sweep(dashboard_url: str, page: Any, artifacts_dir: Path) -> None:
    from playwright.sync_api import expect

    page.goto(f"{dashboard_url}/sweeps", wait_until="domcontentloaded")
    expect(page.get_by_role("heading", name="Sweeps")).to_be_visible(timeout=60_000)
    when_idle(page).get_by_test_id("stRadioGroup").get_by_text("Run a small sweep").click()
    run_button = page.get_by_role("button", name="Run")
    expect(run_button).to_be_visible(timeout=30_000)
    when_idle(page)
    run_button.click()
    expect(charts(page)).to_have_count(1, timeout=90_000)

    def sweep_title(shown: list[str]) -> bool:
        return any(t.startswith("latency_ms.ack.p99 vs workload.rate_per_s") for t in shown)

    shown = titles_once(page, sweep_title)
    assert sweep_title(shown), shown
    assert_no_error(page)
    full_screenshot(page, artifacts_dir / "sweeps.png", height=1400)
