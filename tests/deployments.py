"""ONE as a client sees it, in either mode: embedded (in-process projections) or distributed (a
real Kafka broker, `one relay`, Faust workers), served over HTTP on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from api.runtime import Runtime
from infra.database import ConnectionInfo
from tests.cluster import Cluster
from tests.conftest import start_runtime
from tests.support.live_server import LiveServer

MODES = ("embedded", "distributed")


@dataclass(frozen=True)
class Deployment:
    """A running ONE: its mode, runtime (the API process) and base URL."""

    mode: str
    runtime: Runtime
    url: str
    cluster: Cluster | None = None
    """The relay and workers of distributed mode."""


@contextmanager
def deployed(mode: str, db: ConnectionInfo, request: pytest.FixtureRequest, logs: Path,
             knowledge: bool = False) -> Iterator[Deployment]:
    """Start ONE in `mode` (with the vector projection if `knowledge`) and serve it."""
    if mode == "embedded":
        runtime = start_runtime(db, run_knowledge=knowledge)
        try:
            with LiveServer(runtime) as live:
                yield Deployment(mode, runtime, live.url)
        finally:
            runtime.close()
        return
    cluster = Cluster(db, request.getfixturevalue("kafka_broker"), logs)
    try:
        runtime = cluster.start_runtime()
        cluster.start_worker()
        if knowledge:
            cluster.start_worker("--knowledge")
        cluster.start_relay()
        with LiveServer(runtime) as live:
            yield Deployment(mode, runtime, live.url, cluster)
    finally:
        cluster.close()
