"""Distributed mode against a real Kafka broker and real Faust workers (`one relay`, `one worker`
as subprocesses): commands become query results, and after every fault the read models converge
to exactly the rebuild-from-the-log state, with nothing lost and nothing applied twice."""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from eventsourcing.persistence import StoredEvent
from kafka import KafkaConsumer

from api.runtime import Runtime
from commands import models as m
from domain.connections import connection_id
from domain.errors import DomainError
from eventlog.store import open_event_log
from infra.database import ConnectionInfo
from projections.rebuild import rebuild, rebuild_via_topic, snapshot
from projections.registry import PROJECTIONS
from streams.lag import consumer_lag
from tests.cluster import PARTITIONS, Cluster
from tests.conftest import api_client, wait_for_contract, wait_for_purchase
from tests.support.kafka_broker import KafkaBroker
from tests.support.live_server import LiveServer
from tests.support.waiting import wait_until


@pytest.fixture
def cluster(fresh_db: ConnectionInfo, kafka_broker: KafkaBroker, tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(fresh_db, kafka_broker, tmp_path)
    c.start_runtime()
    try:
        yield c
    finally:
        c.close()


class Load:
    """Background writers: content with tags and collaborators, follows, edits, views."""

    def __init__(self, runtime: Runtime, writers: int = 4) -> None:
        self.runtime = runtime
        self.stop_flag = threading.Event()
        bus = runtime.bus
        self.creators = [bus.execute(m.CreateThing(type="creator", name=f"c{i}")).body["id"]
                         for i in range(6)]
        self.threads = [threading.Thread(target=self._write, args=(seed,)) for seed in range(writers)]
        self.accepted = 0

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop_flag.set()
        for thread in self.threads:
            thread.join(timeout=30)

    def _write(self, seed: int) -> None:
        rng = random.Random(seed)
        bus = self.runtime.bus
        made: list[str] = []
        while not self.stop_flag.is_set():
            creator = rng.choice(self.creators)
            fan = rng.choice(self.creators)
            commands: list[object] = [
                m.CreateContent(creator_id=uuid.UUID(creator), type="blog_post", name="post",
                                tags=[f"topic:t{rng.randint(0, 5)}"]),
                m.CreateConnection(from_id=uuid.UUID(fan), to_id=uuid.UUID(creator), type="following"),
                m.RemoveConnection(id=connection_id(uuid.UUID(fan), "following", uuid.UUID(creator))),
            ]
            if made:
                target = uuid.UUID(rng.choice(made))
                commands += [
                    m.UpdateThing(id=target, properties={"n": rng.randint(0, 9)}),
                    m.TagThing(id=target, tags=[f"topic:t{rng.randint(0, 5)}"]),
                    m.UntagThing(id=target, tags=[f"topic:t{rng.randint(0, 5)}"]),
                    m.RecordActivity(type="content_viewed", target_id=target),
                ]
            try:
                result = bus.execute(rng.choice(commands))
            except DomainError:
                continue
            self.accepted += 1
            if "connections" in result.body:
                made.append(result.body["id"])
            time.sleep(0.002)


def assert_equals_rebuild(cluster: Cluster) -> None:
    """Stop the workers, then compare every read model with a rebuild from position 0."""
    cluster.converge()
    cluster.stop_workers()
    projections = list(PROJECTIONS.values())
    converged = snapshot(cluster.db, projections)
    event_log = open_event_log(cluster.db)
    try:
        rebuild(event_log, cluster.db, projections)
    finally:
        event_log.close()
    rebuilt = snapshot(cluster.db, projections)
    assert converged["things"], "nothing was projected"
    for table, rows in rebuilt.items():
        assert converged[table] == rows, f"{table} differs from its rebuild"


def topic_positions(cluster: Cluster) -> list[int]:
    """Every envelope position on the topic (duplicates included)."""
    values = (json.loads(raw) for raw in cluster.topic_values())
    return [value["position"] for value in values if "position" in value]


def test_http_commands_become_query_results_through_kafka(cluster: Cluster) -> None:
    cluster.start_relay()
    cluster.start_worker()
    assert cluster.runtime is not None
    with LiveServer(cluster.runtime) as live, api_client(live.url, timeout=90) as http:
        creator = http.post("/v1/things", json={"type": "creator", "name": "Kai"}).json()
        fan = http.post("/v1/things", json={"type": "creator", "name": "Fan"}).json()
        post = http.post("/v1/content", json={"creator_id": creator["id"], "type": "blog_post",
                                              "name": "Streams", "tags": ["topic:kafka"]}).json()
        follow = http.post("/v1/connections", json={"from_id": fan["id"], "to_id": creator["id"],
                                                    "type": "following"}).json()
        profile = http.get(f"/v1/creators/{creator['id']}", params={"after": follow["position"]})
        assert profile.status_code == 200, profile.text
        body = profile.json()
        assert body["follower_count"] == 1
        assert [c["id"] for c in body["content"]] == [post["id"]]
        tags = http.get("/v1/tags", params={"after": post["position"]}).json()["items"]
        assert {"tag": "topic:kafka", "category": "topic", "value": "kafka", "usage_count": 1} in tags
        status = http.get("/v1/projections").json()
        assert status["mode"] == "distributed"
        assert [p["partition"] for p in status["partitions"]] == list(range(PARTITIONS))
        assert all(p["watermark"] >= follow["position"] for p in status["partitions"])
        assert 'one_consumer_lag_records{partition="0"}' in http.get("/metrics").text

    def committed() -> bool:  # the worker acknowledges its batches: their offsets get committed
        lag = consumer_lag(cluster.broker.bootstrap, cluster.topic, cluster.group, PARTITIONS)
        return sum(lag.values()) == 0

    wait_until(committed, "the worker group to commit every offset", timeout=30)


def test_relay_killed_mid_batch_loses_and_duplicates_nothing(cluster: Cluster) -> None:
    relay = cluster.start_relay()
    cluster.start_worker()
    assert cluster.runtime is not None
    rng = random.Random(7)
    with Load(cluster.runtime):
        for _ in range(3):
            cluster.wait_progress(rng.randint(50, 400))  # killed at a different point each time
            relay.kill()
            relay = cluster.start_relay()
    cluster.converge()
    positions = topic_positions(cluster)
    assert set(positions) == set(range(1, cluster.head() + 1)), "an event never reached the topic"
    assert_equals_rebuild(cluster)


def test_worker_crash_and_rebalance_converge(cluster: Cluster) -> None:
    cluster.start_relay()
    first = cluster.start_worker()
    assert cluster.runtime is not None
    with Load(cluster.runtime):
        cluster.wait_group(1)
        cluster.wait_progress(200)
        second = cluster.start_worker()  # joins: partitions are rebalanced
        cluster.wait_group(2)
        cluster.wait_progress(200)
        first.kill()  # crashes mid-stream: the group notices when its session times out
        cluster.wait_group(1)
        cluster.wait_progress(200)
        cluster.start_worker()  # the replacement joins
        cluster.wait_group(2)
        cluster.wait_progress(200)
        second.stop()  # leaves cleanly
        cluster.wait_group(1)
        cluster.wait_progress(200)
    assert_equals_rebuild(cluster)


def test_two_workers_updating_the_same_tag_counters_converge(cluster: Cluster) -> None:
    """Two workers replaying a backlog whose things share a few tags update the same counter rows
    concurrently, from different partitions: the read models still equal a rebuild."""
    assert cluster.runtime is not None
    bus = cluster.runtime.bus
    rng = random.Random(5)
    tags = [f"topic:t{n}" for n in range(12)]
    futures = [bus.submit(m.CreateThing(type="blog_post", name=f"p{i}", tags=rng.sample(tags, 3)))
               for i in range(8000)]
    for future in futures:
        future.result(timeout=120)
    cluster.start_worker()
    cluster.start_worker()
    cluster.start_relay()
    assert_equals_rebuild(cluster)


def test_broker_restart_under_load(cluster: Cluster) -> None:
    cluster.start_relay()
    cluster.start_worker()
    assert cluster.runtime is not None
    with Load(cluster.runtime):
        cluster.wait_progress(100)
        cluster.broker.restart()
        cluster.wait_progress(300)  # flowing again through the restarted broker
    assert_equals_rebuild(cluster)


def test_poison_event_is_parked_not_blocking(cluster: Cluster) -> None:
    cluster.start_relay()
    cluster.start_worker()
    assert cluster.runtime is not None
    bus = cluster.runtime.bus
    bus.execute(m.CreateThing(type="creator", name="before"))
    poison_id = uuid.uuid4()
    recorder = cluster.runtime.event_log.recorder

    state = json.dumps({"timestamp": {"_type_": "datetime_iso", "_data_": "2026-01-01T00:00:00+00:00"},
                        "originator_topic": "domain.things:Thing", "org_id": "o", "actor_id": "a",
                        "type": "creator", "class_version": 2}).encode()  # no name: projector fails
    recorder.insert_events([StoredEvent(poison_id, 1, "domain.things:Thing.Created", state)])
    after = bus.execute(m.CreateThing(type="creator", name="after")).body
    cluster.converge()
    with psycopg.connect(cluster.db.conninfo) as conn:
        names = {r[0] for r in conn.execute("SELECT name FROM things").fetchall()}
        errors = conn.execute("SELECT stream_id, event_type FROM projection_errors").fetchall()
    assert {"before", "after"} <= names
    assert (str(poison_id), "thing.created") in errors
    consumer = KafkaConsumer(f"{cluster.topic}.dlq", bootstrap_servers=cluster.broker.bootstrap,
                             auto_offset_reset="earliest", consumer_timeout_ms=5000)
    dead = [json.loads(r.value) for r in consumer]
    consumer.close()
    assert any(str(poison_id) in d["value"] for d in dead)
    assert after["position"] > 0


def test_rebuild_by_replaying_the_topic_equals_rebuild_from_log(cluster: Cluster) -> None:
    cluster.start_relay()
    cluster.start_worker()
    assert cluster.runtime is not None
    with Load(cluster.runtime):
        cluster.wait_progress(500)
    cluster.converge()
    cluster.stop_workers()
    projections = list(PROJECTIONS.values())
    rebuild_via_topic(cluster.db, projections, cluster.broker.bootstrap, cluster.topic,
                      cluster.group)
    with psycopg.connect(cluster.db.conninfo) as conn:
        assert conn.execute("SELECT count(*) FROM things").fetchone() == (0,)
    cluster.start_worker()
    cluster.converge()
    assert_equals_rebuild(cluster)


def test_token_purchase_completes_in_distributed_mode(cluster: Cluster) -> None:
    """The saga driver finds its work in the sagas read model that the Faust workers build."""
    cluster.start_relay()
    cluster.start_worker()
    assert cluster.runtime is not None
    cluster.runtime.start_sagas()  # sandbox Stripe + in-process EVM, as `one sagas run` would
    with LiveServer(cluster.runtime) as live, api_client(live.url, timeout=90) as http:
        buyer = http.post("/v1/people", json={"name": "Kim", "email": "kim@example.com"}).json()
        token = http.post("/v1/things", json={"type": "token", "name": "Kim Coin",
                                              "properties": {"priceUsd": 1}}).json()
        wait_for_contract(http, token)
        started = http.post("/v1/token-purchases", json={
            "buyer_id": buyer["id"], "token_id": token["id"], "amount": 3,
            "payment_method": "pm_card_visa"}).json()
        assert wait_for_purchase(http, started["id"])["status"] == "completed"
        holdings = http.get(f"/v1/holders/{buyer['id']}/tokens",
                            params={"after": cluster.head()}).json()["items"]
        assert [h["balance"] for h in holdings] == [3]
