"""Analytics and the dashboard: purchases (completed, declined), views, interactions and an ELEVATE
step give the seeds' revenue metrics (every payment status), top content, engagement, the funnel
and revenue per creator, over HTTP and as CSV; the dashboard page shows them in a real headless
browser (Debian's chromium with selenium), follows the live stream, and leaves screenshots."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ready
from selenium.webdriver.support.ui import WebDriverWait

from api.runtime import Runtime
from infra.database import ConnectionInfo
from tests.conftest import api_client, start_runtime
from tests.support.live_server import LiveServer
from tests.support.waiting import wait_until
from tests.tenants import Tenant


@dataclass
class Shop:
    url: str
    tenant: Tenant
    post: str
    creator: str


@pytest.fixture
def shop(fresh_db: ConnectionInfo) -> Iterator[Shop]:
    runtime: Runtime = start_runtime(fresh_db)
    runtime.start_sagas()
    try:
        with LiveServer(runtime) as live, api_client(live.url, timeout=60) as client:
            a = Tenant.found(client, "Shop")
            owner, buyer = a.owner, a.customer
            creator = a.act(owner, "POST", "/v1/things", json={"type": "creator", "name": "Ada"})["id"]
            token = a.act(owner, "POST", "/v1/things", json={
                "type": "token", "name": "ADA", "properties": {"priceUsd": 2}})["id"]
            a.act(owner, "POST", "/v1/connections", json={"from_id": creator, "to_id": token, "type": "owns"})
            post = a.act(owner, "POST", "/v1/things",
                         json={"type": "blog_post", "name": "Morning flow"})["id"]
            purchases = [a.act(buyer, "POST", "/v1/token-purchases", json={
                "buyer_id": buyer.id, "token_id": token, "amount": amount, "payment_method": card})["id"]
                for amount, card in ((5, "pm_card_visa"), (10, "pm_card_visa"),
                                     (1, "pm_card_chargeDeclined"))]
            def finished() -> bool:
                statuses = [a.read(buyer, f"/v1/token-purchases/{p}")["status"] for p in purchases]
                return all(status in ("completed", "failed") for status in statuses)

            wait_until(finished, "the purchases to finish", timeout=90)
            for kind, meta in (("content_viewed", {}), ("content_viewed", {}),
                               ("content_interacted", {"interactionType": "liked"})):
                a.act(owner, "POST", "/v1/events", json={"type": kind, "target_id": post, "metadata": meta})
            journey = a.act(owner, "POST", "/v1/workflows/elevate/instances",
                            json={"input": {"business": "yoga"}})
            wait_until(lambda: a.read(owner, f"/v1/workflows/instances/{journey['id']}")["step"] == "review",
                       "the ELEVATE hook", timeout=60)
            runtime.wait_for_sync(runtime.head())
            a.position = runtime.head()
            yield Shop(live.url, a, post, creator)
    finally:
        runtime.close()


def test_revenue_metrics_reports_and_csv(shop: Shop) -> None:
    a = shop.tenant
    revenue = a.read(a.owner, "/v1/analytics/revenue")
    assert revenue["total"] == 30.0 and revenue["count"] == 2 and revenue["average_order_value"] == 15.0
    assert revenue["platform_fees"] == pytest.approx(4.5)
    assert {s: v["count"] for s, v in revenue["by_status"].items()} == {
        "initiated": 3, "completed": 2, "failed": 1, "refunded": 0}
    board = a.read(a.owner, "/v1/analytics/dashboard")
    assert board["top_content"][0] == {"id": shop.post, "name": "Morning flow", "type": "blog_post",
                                       "views": 2, "interactions": 1}
    engaged = {e["interaction"]: e["count"] for e in board["engagement"]}
    assert engaged.items() >= {"content_viewed": 2, "liked": 1}.items()
    assert board["elevate_funnel"]["steps"][0] == {"step": "hook", "people": 1}
    assert board["revenue_per_creator"] == [{"creator_id": shop.creator, "name": "Ada", "revenue": 25.5,
                                             "payouts": 2}]
    assert sum(day["transactions"] for day in board["revenue_over_time"]) == 2
    r = a.client.get("/v1/analytics/export", headers=a.owner.headers, params={"report": "top_content"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert rows[0]["name"] == "Morning flow" and rows[0]["views"] == "2"
    refused = a.client.get("/v1/analytics/revenue", headers=a.customer.headers)
    assert refused.status_code == 403


def test_the_dashboard_shows_the_metrics_in_a_browser(shop: Shop, browser: WebDriver, tmp_path: Path) -> None:
    a = shop.tenant
    wait = WebDriverWait(browser, 30)
    browser.get(f"{shop.url}/dashboard")
    browser.find_element(By.ID, "key").send_keys(a.owner.key)
    browser.find_element(By.ID, "connect").click()
    wait.until(ready.text_to_be_present_in_element((By.ID, "total"), "$30.00"))
    assert browser.find_element(By.ID, "count").text == "2"
    assert "Morning flow" in browser.find_element(By.ID, "top").text
    assert "hook" in browser.find_element(By.ID, "funnel").text
    assert len(browser.find_elements(By.CSS_SELECTOR, "#volume-chart rect.bar")) >= 1
    statuses = browser.find_element(By.ID, "statuses").text
    assert "failed" in statuses and "refunded" in statuses
    browser.save_screenshot(str(tmp_path / "dashboard.png"))

    a.act(a.owner, "POST", "/v1/events", json={"type": "content_viewed", "target_id": shop.post})
    wait.until(ready.text_to_be_present_in_element((By.ID, "feed"), "activity.recorded"))
    browser.save_screenshot(str(tmp_path / "dashboard-live.png"))
    for shot in ("dashboard.png", "dashboard-live.png"):
        assert (tmp_path / shot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
