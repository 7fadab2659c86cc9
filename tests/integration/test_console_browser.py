"""The operator console in a real headless browser (Debian's chromium, driven by selenium): it
signs in with an org owner's key, shows the projections, a parked event and a parked saga of its
organization, re-applies the event and resolves the saga when their buttons are clicked, follows
the live stream, and leaves a screenshot."""

from __future__ import annotations

from pathlib import Path

from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ready
from selenium.webdriver.support.ui import WebDriverWait

from api.runtime import Runtime
from tests.conftest import served
from tests.support.parking import fix_the_cause, parked_purchase, refuse_cursed_names
from tests.tenants import Tenant


def test_the_console_shows_and_handles_parked_work_live(runtime: Runtime, browser: WebDriver,
                                                         tmp_path: Path) -> None:
    with served(runtime) as http:
        a = Tenant.found(http, "A")
        refuse_cursed_names(runtime.db)
        cursed = a.act(a.owner, "POST", "/v1/things", json={"type": "course", "name": "cursed course"})
        saga = parked_purchase(runtime, a)
        base = str(http.base_url).rstrip("/")
        wait = WebDriverWait(browser, 20)

        browser.get(f"{base}/console")
        browser.find_element(By.ID, "key").send_keys(a.owner.key)
        browser.find_element(By.ID, "connect").click()
        wait.until(ready.text_to_be_present_in_element((By.ID, "status"), "connected as org_owner"))
        things_row = "#projections tr[data-projection=things]"
        wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, things_row)))
        parked_row = f"#parked tr[data-position='{cursed['position']}']"
        saga_row = f"#sagas tr[data-saga='{saga}']"
        wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, parked_row)))
        wait.until(ready.presence_of_element_located((By.CSS_SELECTOR, saga_row)))
        assert "cursed names are refused" in browser.find_element(By.CSS_SELECTOR, parked_row).text
        browser.save_screenshot(str(tmp_path / "console.png"))

        fix_the_cause(runtime.db)
        browser.find_element(By.CSS_SELECTOR, f"{parked_row} button[name=retry]").click()
        wait.until(ready.invisibility_of_element_located((By.CSS_SELECTOR, parked_row)))
        retried = http.get(f"/v1/things/{cursed['id']}", headers=a.owner.headers).json()
        assert retried["name"] == "cursed course"

        browser.find_element(By.CSS_SELECTOR, f"{saga_row} button[name=resolve]").click()
        wait.until(ready.alert_is_present())
        prompt = browser.switch_to.alert
        prompt.send_keys("refunded in the Stripe dashboard")
        prompt.accept()
        wait.until(ready.invisibility_of_element_located((By.CSS_SELECTOR, saga_row)))
        resolved = http.get(f"/v1/token-purchases/{saga}", headers=a.owner.headers).json()
        assert resolved["status"] == "resolved"

        made = a.act(a.owner, "POST", "/v1/things", json={"type": "course", "name": "seen live"})
        wait.until(ready.text_to_be_present_in_element((By.ID, "feed"), f"{made['position']} thing.created"))
        browser.save_screenshot(str(tmp_path / "console-after.png"))
    for shot in ("console.png", "console-after.png"):
        assert (tmp_path / shot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

