"""The dashboard served by `streamlit run` and driven by a real Chromium (Debian's, no download).

Skipped on a machine without Chromium; under CI=true a missing Chromium or Playwright fails the
test (the `browser` marker and `require_module`, see tests/support.py).
"""

from __future__ import annotations

import re
import sys
import time
import urllib.request
from pathlib import Path

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


@pytest.fixture
def dashboard_url(process_group: ProcessGroup) -> str:
    """`streamlit run dashboard/app.py` on a free loopback port, in its own process group."""
    port = free_port()
    proc = process_group.spawn(
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


def test_playground_runs_the_default_scenario_in_chromium(
    dashboard_url: str, artifacts_dir: Path
) -> None:
    require_module("playwright", "driving Chromium from the tests")
    chromium = require_chromium("the dashboard browser test")
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            console_errors: list[str] = []
            page.on("pageerror", lambda exc: console_errors.append(str(exc)))
            page.goto(dashboard_url, wait_until="domcontentloaded")  # Playground is the default

            run_button = page.get_by_role("button", name="Run")
            expect(run_button).to_be_visible(timeout=60_000)
            scenario = page.get_by_role("combobox", name="Scenario")
            expect(scenario).to_have_value(re.compile(r"^queue_mm1 — "))
            run_button.click()

            charts = page.locator('[data-testid="stPlotlyChart"] .js-plotly-plot')
            expect(charts).to_have_count(2, timeout=90_000)
            expect(page.locator(".main-svg .gtitle").first).to_be_visible(timeout=30_000)
            titles = page.locator(".gtitle").all_text_contents()
            assert "What happened to every message" in titles
            assert any(t.startswith("Produce -> ack latency") for t in titles), titles

            metrics = page.locator('[data-testid="stMetric"]')
            expect(metrics).to_have_count(4)
            labels = [
                m.lower() for m in page.locator('[data-testid="stMetricLabel"]').all_inner_texts()
            ]
            assert labels == ["produced", "delivered", "lost", "duplicates"]
            expect(page.get_by_role("button", name="summary.json")).to_be_visible()

            # single page: no navigation, in particular no legacy pages/ listing
            assert page.locator('[data-testid="stSidebarNav"]').count() == 0
            assert page.locator('[data-testid="stException"]').count() == 0
            assert page.locator('[data-testid="stAlertContentError"]').count() == 0
            # Streamlit scrolls inside its main container: a tall viewport shows the whole page
            page.set_viewport_size({"width": 1400, "height": 2000})
            page.wait_for_timeout(800)  # let plotly redraw at the new size
            page.screenshot(path=str(artifacts_dir / "playground.png"))

            # an invalid value: the schema's message next to the form, and no traceback
            rate = page.get_by_role("spinbutton", name="rate_per_s")
            rate.fill("0")
            rate.press("Enter")
            page.get_by_role("button", name="Run").click()
            error = page.locator('[data-testid="stAlertContentError"]')
            expect(error).to_contain_text("workload.rate_per_s", timeout=30_000)
            expect(charts).to_have_count(0)
            page.screenshot(path=str(artifacts_dir / "playground-invalid.png"))
            assert page.locator('[data-testid="stException"]').count() == 0
            assert not console_errors, console_errors
        finally:
            browser.close()
