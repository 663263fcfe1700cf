"""The HTML report of the demo in a real headless browser (Debian's chromium through chromedriver, offline).

Checks what a static test cannot: the page runs without console errors, the severity and family filters hide and
show the incidents (and the plan steps and contents entries that go with them), every in-page link lands on an
element, nothing is requested from the network, and printing expands the details and hides the controls.
``KUBESHAPE_UPDATE_SCREENSHOT=1`` also writes docs/report-demo.png (1280×1600, the top of the demo report).
"""

from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import sys
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from tests.browser import BrowserUnavailable, ensure_chromium, requested_urls, start_chrome

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOT = ROOT / "docs" / "report-demo.png"
WIDTH, HEIGHT = 1280, 1600
URL_ATTRS = {"src", "href", "action", "formaction", "srcset", "poster", "data", "background", "manifest", "ping",
             "cite", "xlink:href", "longdesc", "usemap", "codebase", "archive", "profile", "icon"}
LOCAL = ("file:", "data:", "about:")


@pytest.fixture(scope="session")
def demo_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo report rendered by the CLI, as a user would."""
    out = tmp_path_factory.mktemp("html") / "report.html"
    proc = subprocess.run([sys.executable, "-m", "kubeshape", "doctor", "--demo", "-o", "html", "--fail-on", "never",
                           "--report-file", str(out)], capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.fixture(scope="session")
def chrome() -> Iterator[Any]:
    found: tuple[Path, Path] | BrowserUnavailable
    try:
        found = ensure_chromium()
    except BrowserUnavailable as exc:
        found = exc
    if isinstance(found, BrowserUnavailable):  # a failure with the exact reason, never a skip
        pytest.fail(f"no headless browser for the HTML report tests: {found}", pytrace=False)
    driver = start_chrome(*found)
    yield driver
    driver.quit()


@pytest.fixture
def page(chrome: Any, demo_report: Path) -> Any:
    """The demo report freshly loaded at 1280×1600 on screen media, with the browser's logs drained before."""
    chrome.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": False})
    chrome.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": ""})
    chrome.get("about:blank")
    chrome.get_log("browser")
    chrome.get_log("performance")
    chrome.get(demo_report.as_uri())
    assert chrome.execute_script("return document.readyState") == "complete"
    return chrome


def _by_id(driver: Any, element_id: str) -> Any:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, element_id)


def _incidents(driver: Any) -> list[dict[str, Any]]:
    """Every incident article: id, severity, families and whether it is displayed."""
    from selenium.webdriver.common.by import By

    out = []
    for el in driver.find_elements(By.CSS_SELECTOR, "article.incident"):
        out.append({"id": el.get_attribute("id"), "severity": el.get_attribute("data-severity"),
                    "families": el.get_attribute("data-families").split(), "shown": el.is_displayed()})
    return out


def _shown(driver: Any) -> set[str]:
    return {i["id"] for i in _incidents(driver) if i["shown"]}


def _severe(driver: Any) -> list[dict[str, Any]]:
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


# --- static: self-contained ----------------------------------------------------------------------------------


class _Refs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[tuple[str, str, str]] = []
        self.tags: list[str] = []
        self.csp = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        values = dict(attrs)
        if tag == "meta" and (values.get("http-equiv") or "").lower() == "content-security-policy":
            self.csp = values.get("content") or ""
        for name, value in attrs:
            if name in URL_ATTRS and value is not None:
                self.refs.append((tag, name, value))


def test_html_is_self_contained(demo_report: Path) -> None:
    page = demo_report.read_text(encoding="utf-8")
    parser = _Refs()
    parser.feed(page)
    external = [r for r in parser.refs if re.match(r"\s*(?:[a-z][a-z0-9+.-]*:|//)", r[2], re.I)
                and not r[2].strip().lower().startswith(LOCAL)]
    assert external == []
    assert all(value.startswith("#") for _, _, value in parser.refs)  # only in-page links
    assert not {"link", "img", "iframe", "object", "embed", "base", "video", "audio", "source"} & set(parser.tags)
    assert parser.tags.count("script") == 1 and parser.tags.count("style") == 1
    assert not re.search(r"<script[^>]*\ssrc\s*=", page, re.I)
    assert not re.search(r"@import|url\(\s*['\"]?\s*(?:https?:)?//", page, re.I)
    assert "default-src 'none'" in parser.csp and "script-src 'sha256-" in parser.csp


# --- in the browser ------------------------------------------------------------------------------------------


def test_page_renders_without_console_errors(page: Any) -> None:
    from selenium.webdriver.common.by import By

    assert page.title.startswith("kubeshape doctor")
    assert page.find_element(By.CSS_SELECTOR, "h1").text == "kubeshape doctor"
    assert _by_id(page, "filters").is_displayed()  # the script ran: the controls are shown
    for box in page.find_elements(By.CSS_SELECTOR, "#filters input[type=checkbox]"):
        box.click()
        box.click()
    _by_id(page, "filter-all").click()
    assert _severe(page) == []


def test_severity_filter_hides_and_shows_incidents(page: Any) -> None:
    incidents = _incidents(page)
    everything = {i["id"] for i in incidents}
    assert all(i["shown"] for i in incidents), "every incident is shown at first"
    warnings = {i["id"] for i in incidents if i["severity"] == "warning"}
    errors = {i["id"] for i in incidents if i["severity"] == "error"}
    assert warnings and errors, "the demo has error and warning incidents"
    assert _by_id(page, "filter-status").text == f"showing all {len(incidents)} incidents"

    _by_id(page, "filter-severity-warning").click()
    shown = _shown(page)
    assert not shown & warnings
    assert errors <= shown
    assert shown == everything - warnings
    assert _by_id(page, "filter-status").text == f"showing {len(shown)} of {len(incidents)} incidents"
    assert not _by_id(page, f"toc-{min(warnings, key=lambda i: int(i.split('-')[1]))}").is_displayed()
    _check_plan_follows(page, shown)

    _by_id(page, "filter-severity-warning").click()
    assert _shown(page) == everything
    _check_plan_follows(page, everything)

    _by_id(page, "filter-severity-info").click()
    assert _shown(page) == {i["id"] for i in incidents if i["severity"] != "info"}
    for sev in ("error", "warning"):
        _by_id(page, f"filter-severity-{sev}").click()
    assert _shown(page) == set()
    assert _by_id(page, "no-match").is_displayed()
    _by_id(page, "filter-all").click()
    assert _shown(page) == everything
    assert not _by_id(page, "no-match").is_displayed()


def test_family_filter_hides_incidents_of_that_family_only(page: Any) -> None:
    incidents = _incidents(page)
    everything = {i["id"] for i in incidents}
    alone = {fam for i in incidents if len(i["families"]) == 1 for fam in i["families"]}
    shared = {fam for i in incidents if len(i["families"]) > 1 for fam in i["families"]}
    fam = min(alone & shared or alone, key=int)  # best: a family with incidents of its own and shared ones
    only_this = {i["id"] for i in incidents if i["families"] == [fam]}
    assert only_this

    _by_id(page, f"filter-family-{fam}").click()
    shown = _shown(page)
    assert shown == everything - only_this  # incidents that touch another family too stay visible
    assert {i["id"] for i in incidents if fam in i["families"] and len(i["families"]) > 1} <= shown
    _check_plan_follows(page, shown)

    _by_id(page, f"filter-family-{fam}").click()
    assert _shown(page) == everything

    for n in range(1, 8):  # no family checked: nothing is shown, whatever the severities
        _by_id(page, f"filter-family-{n}").click()
    assert _shown(page) == set()
    _by_id(page, "filter-all").click()
    assert _shown(page) == everything


def _check_plan_follows(driver: Any, shown: set[str]) -> None:
    """A plan step is shown when one of the incidents it closes is."""
    from selenium.webdriver.common.by import By

    steps = driver.find_elements(By.CSS_SELECTOR, "li.step")
    assert steps
    for step in steps:
        closes = {f"incident-{i}" for i in step.get_attribute("data-incidents").split()}
        assert step.is_displayed() == bool(closes & shown), step.get_attribute("id")


def test_table_of_contents_links_land_on_elements(page: Any) -> None:
    missing = page.execute_script("""
        return Array.from(document.querySelectorAll('a[href^="#"]'))
            .map(a => a.getAttribute('href').slice(1))
            .filter(id => document.getElementById(decodeURIComponent(id)) === null);
    """)
    assert missing == []
    toc = page.execute_script("""
        return Array.from(document.querySelectorAll('#toc a')).map(a => a.getAttribute('href'));
    """)
    incidents = [f"#{i['id']}" for i in _incidents(page)]
    phases = page.execute_script("return Array.from(document.querySelectorAll('section.phase')).map(s => '#' + s.id);")
    tail = page.execute_script(
        "return ['metrics', 'blind-spots', 'notes'].filter(id => document.getElementById(id)).map(id => '#' + id);")
    assert toc == ["#summary", "#incidents", *incidents, "#plan", *phases, *tail]
    assert "#metrics" in tail and "#notes" in tail
    assert phases[0] == "#phase-stop"
    page.find_element("css selector", f'#toc a[href="{incidents[-1]}"]').click()
    assert page.execute_script("return location.hash") == incidents[-1]
    top = page.execute_script(f"return document.getElementById('{incidents[-1][1:]}').getBoundingClientRect().top")
    assert 0 <= top < HEIGHT


def test_page_makes_no_network_requests(page: Any) -> None:
    resources = page.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name);")
    assert [r for r in resources if not r.startswith(LOCAL)] == []
    urls = requested_urls(page)
    assert urls, "the performance log records the document itself"
    assert [u for u in urls if not u.startswith(LOCAL)] == []
    _by_id(page, "filter-severity-error").click()  # interacting fetches nothing either
    assert [u for u in requested_urls(page) if not u.startswith(LOCAL)] == []


def test_print_expands_details_and_hides_controls(page: Any) -> None:
    from selenium.webdriver.common.by import By

    first_finding = "document.querySelector('details.findings .finding')"
    assert page.execute_script(f"return {first_finding}.checkVisibility()") is False  # collapsed on screen
    _by_id(page, "filter-severity-warning").click()
    page.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print"})
    try:
        assert not _by_id(page, "filters").is_displayed()
        assert page.execute_script(f"return {first_finding}.checkVisibility()") is True
        assert all(i["shown"] for i in _incidents(page)), "the print has every incident, filtered or not"
        assert all(s.is_displayed() for s in page.find_elements(By.CSS_SELECTOR, "li.step"))
    finally:
        page.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": ""})
    pdf = page.print_page()  # the browser's own print path (beforeprint/afterprint) runs cleanly too
    assert len(pdf) > 1000
    assert _severe(page) == []


def test_screenshot(page: Any, tmp_path: Path) -> None:
    """The top of the demo report at 1280×1600; kept in docs/ for the README when asked to."""
    shot = tmp_path / "report-demo.png"
    page.execute_script("window.scrollTo(0, 0)")
    assert page.get_screenshot_as_file(str(shot))
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", data[16:24]) == (WIDTH, HEIGHT)
    if os.environ.get("KUBESHAPE_UPDATE_SCREENSHOT") == "1":
        SCREENSHOT.parent.mkdir(exist_ok=True)
        shutil.copyfile(shot, SCREENSHOT)


# --- other reports -------------------------------------------------------------------------------------------

HOSTILE = "\"'><img src=x onerror=\"document.title='pwned'\"></pre></script><script>document.title='pwned'</script>"


def _write(tmp_path: Path, report: Any, name: str) -> Path:
    from kubeshape.report.html import render_html

    out = tmp_path / name
    out.write_text(render_html(report), encoding="utf-8")
    return out


def _load(driver: Any, path: Path) -> None:
    driver.get("about:blank")
    driver.get_log("browser")
    driver.get(path.as_uri())
    assert driver.execute_script("return document.readyState") == "complete"


def test_reports_without_findings_render(chrome: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    from kubeshape.report.model import Report

    clean = _write(tmp_path, Report([], sources={"repo": "./deploy"}), "clean.html")
    _load(chrome, clean)
    assert chrome.find_element(By.CSS_SELECTOR, "p.clean").text == "✓ No problems found"
    assert chrome.find_elements(By.CSS_SELECTOR, "#toc, #filters, article.incident") == []
    assert _severe(chrome) == []

    partial = _write(tmp_path, Report([], sources={"cluster": "homelab"}, notes=["context homelab"],
                                      blind_spots=["registry not reachable", "no git history"]), "partial.html")
    _load(chrome, partial)
    assert chrome.find_element(By.CSS_SELECTOR, "p.clean").text == (
        "✓ No problems found in what was analysed — 2 item(s) not analysed, listed below")
    assert [a.get_attribute("href").split("#")[1] for a in chrome.find_elements(By.CSS_SELECTOR, "#toc a")] == [
        "blind-spots", "notes"]
    assert chrome.find_element(By.ID, "blind-spots").is_displayed()
    assert _severe(chrome) == []


def test_hostile_strings_stay_text(chrome: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    from kubeshape.findings import Finding, ObjectRef, Severity
    from kubeshape.report.model import Metric, Report

    finding = Finding("KS501", Severity.ERROR, 5, ObjectRef("Deployment", "ns", HOSTILE), HOSTILE,
                      evidence=[HOSTILE] * 12 + [f"{HOSTILE} {n}" for n in range(3)], root_cause=HOSTILE,
                      fix=f"{HOSTILE}\n\n```bash\nkubectl get pods # {HOSTILE}\n```\n\n--- a\n+++ b\n-{HOSTILE}\n+x\n",
                      file=HOSTILE, line=3, source="cluster")
    report = Report([finding], [Metric("m", HOSTILE, 1.0, "", HOSTILE, False, HOSTILE)],
                    sources={"repo": HOSTILE}, blind_spots=[HOSTILE], notes=[HOSTILE], command="doctor")
    path = _write(tmp_path, report, "hostile.html")
    page = path.read_text(encoding="utf-8")
    assert "<img" not in page and page.count("<script") == 1
    _load(chrome, path)
    assert chrome.title.startswith("kubeshape doctor: repo ")  # not rewritten by an injected script
    assert chrome.find_elements(By.CSS_SELECTOR, "img") == []
    assert len(chrome.find_elements(By.CSS_SELECTOR, "script")) == 1
    assert chrome.find_element(By.CSS_SELECTOR, "#notes li").text == HOSTILE
    assert chrome.find_element(By.CSS_SELECTOR, "#blind-spots li").text == HOSTILE
    _by_id(chrome, "filter-severity-error").click()
    assert not chrome.find_element(By.ID, "incident-1").is_displayed()
    assert _severe(chrome) == []
