"""Issue 17 acceptance: what an auditor sees of the demo's records in MLflow's own UI.

The demo runs as users run it, a real `mlflow server` serves its store, and headless Chromium (the
distribution's package, driven by Playwright without a browser download of its own) opens the pages:
the check run's artifact page shows the drift report (its charts and latest decision, inside the
viewer's sandboxed iframe, with no request leaving the machine), the version's LoggedModel lists the
check runs and is registered, and the run and version pages link back to it. The routes are those of
the MLflow 3.17 UI. On a failure the page's screenshot is saved and named in the error.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from mlflow import MlflowClient

from conftest import MlflowServer
from drift_decider.tracking import tags
from drift_decider.tracking.registry import resolve_version
from support import cli_process, json_outcomes

PLAYWRIGHT = importlib.util.find_spec("playwright") is not None
if PLAYWRIGHT:                     # without it the tests skip, or fail in CI (the chromium fixture)
    from playwright.sync_api import expect, sync_playwright

pytestmark = [pytest.mark.server, pytest.mark.slow]

CHROMIUM = shutil.which("chromium")
WAIT_MS = 30_000          # a page's data arrives from the server in about a second on an idle machine
LOCAL_SCHEMES = {"blob", "data", "about"}


@pytest.fixture(scope="module", autouse=True)
def chromium() -> str:
    """The distribution's Chromium, driven by Playwright. CI installs both (.ci/run), so there a missing
    one fails the tests; elsewhere they are skipped, saying what to install."""
    missing = ("Playwright is not installed: pip install -e '.[test]'" if not PLAYWRIGHT else
               "no chromium on PATH: apt-get install -y chromium" if CHROMIUM is None else None)
    if missing and os.environ.get("CI") == "true":
        pytest.fail(f"CI must run the browser tests: {missing}")
    if missing:
        pytest.skip(missing)
    return CHROMIUM


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """`drift-decider demo --json` in its own process, as a user runs it (its own MLflow globals)."""
    root = tmp_path_factory.mktemp("ui-demo")
    [result] = json_outcomes([cli_process("demo", "--workdir", root / "demo", "--json", cwd=root)], timeout=300)
    return result


@pytest.fixture(scope="module")
def server(demo: dict[str, Any]) -> Iterator[MlflowServer]:
    """A real tracking server over the demo's store (its mlflow.db and artifacts/ are where the server's
    layout has them); the UI reads the run and model artifacts through it."""
    server = MlflowServer(Path(demo["workdir"])).start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def records(demo: dict[str, Any], server: MlflowServer) -> dict[str, str]:
    """The UI routes of the last window's check run, the version's LoggedModel and the version, with the
    ids read from the server."""
    client = MlflowClient(server.uri, server.uri)
    model_id = resolve_version(client, demo["model"], demo["version"]).model_id
    last = client.get_run(demo["windows"][-1]["run_id"])
    return {"run_page": f"#/experiments/{last.info.experiment_id}/runs/{last.info.run_id}",
            "model_page": f"#/experiments/{client.get_logged_model(model_id).experiment_id}/models/{model_id}",
            "version_page": f"#/models/{demo['model']}/versions/{demo['version']}"}


@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator[Any]:
    """Headless, and no browser download: Playwright drives the system's binary."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True)
        yield browser
        browser.close()


class Visit:
    """One page of the UI in a fresh browser context that records every request it makes."""

    def __init__(self, browser: Any, server: MlflowServer, shots: Path) -> None:
        self.server = server
        self.shots = shots
        # tall: the UI scrolls inside its own panes, so a screenshot holds only what the viewport shows
        self.context = browser.new_context(viewport={"width": 1400, "height": 2000})
        self.requests: list[tuple[bool, str]] = []     # (made by the main frame, url)
        self.page = self.context.new_page()
        self.context.on("request", lambda request: self.requests.append(
            (request.frame == self.page.main_frame, request.url)))

    def open(self, route: str) -> Any:
        self.page.goto(f"{self.server.uri}/{route}")
        return self.page

    @contextmanager
    def screenshot_on_failure(self, name: str) -> Iterator[None]:
        try:
            yield
        except BaseException as error:
            path = self.shots / f"{name}.png"
            self.page.screenshot(path=path, full_page=True)
            error.add_note(f"screenshot of the page: {path}")
            raise

    def left_the_machine(self) -> list[str]:
        """Requests to anywhere but the server on 127.0.0.1 (in-page blob:, data: and about: are local)."""
        return [url for _, url in self.requests
                if urlsplit(url).scheme not in LOCAL_SCHEMES and urlsplit(url).hostname != "127.0.0.1"]

    def from_subframes(self) -> list[str]:
        """Requests made inside iframes: the artifact viewer's report, which must ask for nothing."""
        return [url for main, url in self.requests if not main]


@pytest.fixture
def visit(browser: Any, server: MlflowServer, tmp_path: Path) -> Iterator[Visit]:
    visit = Visit(browser, server, tmp_path)
    yield visit
    visit.context.close()


def _check_report(frame: Any, demo: dict[str, Any]) -> None:
    """The report in the viewer's iframe: the latest decision, and the charts with one marker per
    window carrying that window's decision."""
    last = demo["windows"][-1]
    expect(frame.locator(".latest-action")).to_have_text(last["action"], timeout=WAIT_MS)
    expect(frame.locator(".latest-rule")).to_have_text(last["rule_id"] or "-")
    chart = frame.locator('svg.chart[data-metric="queries.off_catalog_share"]')
    expect(chart).to_be_visible()
    assert chart.bounding_box()["height"] > 100          # drawn at its size, not collapsed
    assert [marker.get_attribute("data-action") for marker in chart.locator("circle.marker").all()] == \
        [window["action"] for window in demo["windows"]]
    assert frame.locator("svg.chart").count() >= 5


def test_check_run_artifact_page_shows_the_report(visit: Visit, demo: dict[str, Any],
                                                  records: dict[str, str]) -> None:
    with visit.screenshot_on_failure("run-artifact-report"):
        page = visit.open(f"{records['run_page']}/artifacts/drift_decider/report.html")
        _check_report(page.frame_locator("iframe.mlflow-html-iframe"), demo)
        # self-contained: the sandboxed report asked for nothing but its own blob: document
        assert [url for url in visit.from_subframes() if urlsplit(url).scheme != "blob"] == []
        assert visit.left_the_machine() == []


def test_logged_model_lists_the_check_runs_is_registered_and_holds_the_report(
        visit: Visit, demo: dict[str, Any], records: dict[str, str]) -> None:
    """Not 'Pending' and unregistered, as a reference-set version's model once was (issue 17)."""
    with visit.screenshot_on_failure("logged-model"):
        page = visit.open(records["model_page"])
        runs = page.locator("xpath=//h1[normalize-space()='Runs']/..")
        expect(runs.locator('a[href^="#/runs/"]').first).to_be_visible(timeout=WAIT_MS)
        links = runs.locator('a[href^="#/runs/"]').evaluate_all("links => links.map(a => a.getAttribute('href'))")
        assert {link.removeprefix("#/runs/") for link in links} == {window["run_id"] for window in demo["windows"]}
        versions = page.locator("xpath=//h4[normalize-space()='Model versions']/..")
        expect(versions.locator(f'a[href="{records["version_page"]}"]')).to_be_visible()
        expect(page.get_by_text("Ready", exact=True)).to_be_visible()
        assert page.get_by_text("Pending").count() == 0

        page.get_by_role("link", name="Artifacts", exact=True).click()
        page.get_by_text("drift_decider", exact=True).click()
        page.get_by_text("report.html", exact=True).click()
        _check_report(page.frame_locator("iframe.mlflow-html-iframe"), demo)
        assert visit.left_the_machine() == []


def test_check_run_page_shows_the_registered_logged_model(visit: Visit, records: dict[str, str]) -> None:
    """The run page looks for its models in the run's own experiment: the demo registers there."""
    with visit.screenshot_on_failure("run-overview"):
        page = visit.open(records["run_page"])
        expect(page.get_by_text("Logged models (1)")).to_be_visible(timeout=WAIT_MS)
        expect(page.locator(f'a[href="{records["model_page"]}"]').first).to_be_visible()
        expect(page.locator(f'a[href="{records["version_page"]}"]').first).to_be_visible()


def test_version_page_links_to_its_logged_model_and_shows_the_decision(
        visit: Visit, demo: dict[str, Any], records: dict[str, str]) -> None:
    """The version page shows no metrics or artifacts; its source-model link leads to the runs and report."""
    with visit.screenshot_on_failure("model-version"):
        page = visit.open(records["version_page"])
        expect(page.locator(f'a[href="{records["model_page"]}"]')).to_be_visible(timeout=WAIT_MS)
        decision = page.get_by_role("row").filter(has=page.get_by_text(tags.DECISION, exact=True))
        expect(decision).to_contain_text(demo["windows"][-1]["action"])
