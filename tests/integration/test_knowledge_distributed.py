"""The vector projection in distributed mode: a real Kafka broker, `one relay`, and a Faust
knowledge worker (`one worker --knowledge`, its own consumer group) fill the index that the API
searches; `one knowledge reindex` swaps in a new model while the worker keeps writing."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from api.embeddings_server import create_embeddings_app
from infra.database import ConnectionInfo
from projections.knowledge.indexes import list_indexes
from providers.local_embeddings import LocalMiniLM
from tests.cluster import ROOT, Cluster
from tests.conftest import api_client
from tests.support.kafka_broker import KafkaBroker
from tests.support.live_server import LiveServer
from tests.support.waiting import wait_until

pytestmark = pytest.mark.slow


@pytest.fixture
def cluster(fresh_db: ConnectionInfo, kafka_broker: KafkaBroker, tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(fresh_db, kafka_broker, tmp_path)
    c.start_runtime()
    c.start_worker("--knowledge")
    c.start_relay()
    try:
        yield c
    finally:
        c.close()


def search(http: httpx.Client, q: str, after: int) -> dict[str, object]:
    response = http.get("/v1/search", params={"q": q, "mode": "semantic", "after": after})
    assert response.status_code == 200, response.text
    return dict(response.json())


def create(http: httpx.Client, name: str, description: str) -> int:
    response = http.post("/v1/things", json={"type": "course", "name": name,
                                             "properties": {"description": description}})
    assert response.status_code == 201, response.text
    return int(response.json()["position"])


def test_knowledge_worker_fills_the_index_and_follows_a_reindex(cluster: Cluster) -> None:
    assert cluster.runtime is not None
    with LiveServer(cluster.runtime) as live, api_client(live.url, timeout=90) as http:
        create(http, "Yoga for beginners", "Gentle stretching and breathing lessons.")
        position = create(http, "Filing quarterly taxes", "How companies file tax returns on time.")
        body = search(http, "relax and stretch", position)
        assert body["index"] == "k1"
        assert body["results"][0]["name"] == "Yoga for beginners"  # type: ignore[index]

        with LiveServer(create_embeddings_app(LocalMiniLM())) as embeddings:
            env = {**cluster.env, "ONE_EMBEDDER": "openai", "ONE_EMBEDDING_MODEL": LocalMiniLM().spec.model,
                   "OPENAI_BASE_URL": f"{embeddings.url}/v1"}
            done = subprocess.run([sys.executable, "-m", "api.cli", "knowledge", "reindex"], cwd=ROOT,
                                  env=env, capture_output=True, text=True, timeout=300)
            assert done.returncode == 0, done.stderr + done.stdout
            assert "k2" in done.stdout
            position = create(http, "Sourdough bread", "Bake crusty loaves with a starter.")
            def served_by_new_index() -> bool:  # the worker picks the new index up with its next batch
                body = search(http, "baking bread at home", position)
                return body["index"] == "k2" and body["results"][0]["name"] == "Sourdough bread"  # type: ignore[index]

            wait_until(served_by_new_index, "searches served by the new index k2", timeout=90, interval=0.2)
        with psycopg.connect(cluster.db.conninfo) as conn:
            indexes = [(i.name, i.status, i.spec.provider) for i in list_indexes(conn)]
        assert indexes == [("k2", "active", "openai")]
    cluster.assert_alive()
    cluster.stop_workers()
