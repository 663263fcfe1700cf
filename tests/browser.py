"""A real headless browser for tests: Debian's chromium and chromedriver, driven by Selenium, offline.

:func:`ensure_chromium` finds ``/usr/bin/chromium`` and ``/usr/bin/chromedriver`` (Debian packages ``chromium``
and ``chromium-driver``) and installs them with apt-get when they are missing; it raises
:class:`BrowserUnavailable` with the exact reason when that is impossible, and tests turn that into a failure,
never a skip. :func:`start_chrome` starts the browser through the system chromedriver (Selenium Manager is never
asked to find or download anything) with its network cut off: a dead proxy, no DNS, no background services.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
PACKAGES = ("chromium", "chromium-driver")
INSTALL_TIMEOUT = 900

# Chromium must not use the network: every request that is not file:/data: goes to a dead proxy, no name
# resolves, and the services that phone home are off. ChromeDriver talks to the browser over a pipe/loopback.
OFFLINE_ARGS = (
    "--headless=new",
    "--no-sandbox",  # the tests run as root in a container
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-extensions",
    "--disable-default-apps",
    "--disable-sync",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--disable-features=OptimizationHints,MediaRouter,Translate,AutofillServerCommunication",
    "--no-pings",
    "--proxy-server=http://127.0.0.1:9",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost",
    "--window-size=1280,1600",
)


class BrowserUnavailable(RuntimeError):
    """Chromium or chromedriver is missing and cannot be installed here."""


def _run(cmd: list[str], timeout: int = INSTALL_TIMEOUT) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, check=False)


def _tail(proc: subprocess.CompletedProcess[str], lines: int = 15) -> str:
    out = (proc.stdout + proc.stderr).strip().splitlines()
    return "\n".join(out[-lines:])


def _apt_install() -> None:
    apt = shutil.which("apt-get")
    if apt is None:
        raise BrowserUnavailable(f"{CHROMIUM} or {CHROMEDRIVER} is missing and apt-get is not available to install "
                                 f"them: install the Debian packages {' and '.join(PACKAGES)}")
    if os.geteuid() != 0:
        raise BrowserUnavailable(f"{CHROMIUM} or {CHROMEDRIVER} is missing and this is not root (uid "
                                 f"{os.geteuid()}), so apt-get cannot install them: run "
                                 f"'sudo apt-get install -y {' '.join(PACKAGES)}'")
    install = [apt, "install", "-y", *PACKAGES]
    proc = _run(install)
    if proc.returncode != 0:
        # Typically "Unable to locate package" on an image whose package lists were removed: fetch them once.
        update = _run([apt, "update"])
        if update.returncode != 0:
            raise BrowserUnavailable(f"'{' '.join(install)}' failed (exit {proc.returncode}):\n{_tail(proc)}\n"
                                     f"and 'apt-get update' failed too (exit {update.returncode}):\n{_tail(update)}")
        proc = _run(install)
        if proc.returncode != 0:
            raise BrowserUnavailable(f"'{' '.join(install)}' failed after 'apt-get update' "
                                     f"(exit {proc.returncode}):\n{_tail(proc)}")


def _major(binary: Path) -> int:
    proc = _run([str(binary), "--version"], timeout=60)
    match = re.search(r"(\d+)\.\d+\.\d+", proc.stdout)
    if proc.returncode != 0 or match is None:
        raise BrowserUnavailable(f"'{binary} --version' failed (exit {proc.returncode}): {_tail(proc)}")
    return int(match.group(1))


def ensure_chromium() -> tuple[Path, Path]:
    """``(chromium, chromedriver)``, installed with apt-get when absent; their major versions must match."""
    if not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()):
        _apt_install()
    for path in (CHROMIUM, CHROMEDRIVER):
        if not path.is_file():
            raise BrowserUnavailable(f"{path} is still missing after installing {' '.join(PACKAGES)}")
    browser, driver = _major(CHROMIUM), _major(CHROMEDRIVER)
    if browser != driver:
        raise BrowserUnavailable(f"chromium {browser} and chromedriver {driver} do not match: "
                                 f"'apt-get install -y {' '.join(PACKAGES)}' installs a matching pair")
    return CHROMIUM, CHROMEDRIVER


def start_chrome(chromium: Path, chromedriver: Path) -> Any:
    """A headless, offline Chrome logging its console (``browser``) and its requests (``performance``)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = str(chromium)
    for arg in OFFLINE_ARGS:
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    # An explicit driver path: Selenium Manager is skipped and never downloads a driver or a browser.
    return webdriver.Chrome(service=Service(executable_path=str(chromedriver)), options=options)


def requested_urls(driver: Any) -> list[str]:
    """Every URL the browser asked for since the performance log was last read (documents included)."""
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls
