"""Fixtures of the integration tests: ONE deployed in each mode, and a headless browser (Debian's
chromium driven by selenium) for the web pages."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver

from infra.database import ConnectionInfo
from tests.deployments import MODES, Deployment, deployed


@pytest.fixture(params=MODES)
def deployment(request: pytest.FixtureRequest, fresh_db: ConnectionInfo,
               tmp_path: Path) -> Iterator[Deployment]:
    """ONE serving HTTP, embedded and then distributed."""
    with deployed(request.param, fresh_db, request, tmp_path) as running:
        yield running


@pytest.fixture(params=MODES)
def knowledge_deployment(request: pytest.FixtureRequest, fresh_db: ConnectionInfo,
                         tmp_path: Path) -> Iterator[Deployment]:
    """The same, with the vector projection running."""
    with deployed(request.param, fresh_db, request, tmp_path, knowledge=True) as running:
        yield running


CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--disable-quic", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--window-size=1280,1000")


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    """A headless chromium session (its profile in the test's temporary directory)."""
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium is None or driver is None:
        pytest.fail("the console test needs Debian's chromium and chromium-driver (scripts/test "
                    "installs them)")
    options = Options()
    options.binary_location = chromium
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium'}"):
        options.add_argument(flag)
    session = webdriver.Chrome(options=options, service=Service(executable_path=driver))
    try:
        yield session
    finally:
        session.quit()
