"""Knowledge on the embedded default: the vector projection with the real local model, the search
API over real HTTP (semantic, keyword, hybrid, filters, read-your-writes), the RAG context step,
idempotency, embedding failures parked without blocking, and the re-embedding swap."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import httpx
import psycopg
import pytest
from psycopg import sql

from api.embeddings_server import OpenAIApiError, create_embeddings_app
from api.runtime import Runtime
from domain.knowledge import TextFields
from eventlog.store import open_event_log
from infra.database import ConnectionInfo
from projections.knowledge.indexes import KnowledgeIndex, active_index, find_or_create, list_indexes
from projections.knowledge.search import Filters, nearest_chunks
from projections.knowledge.writer import KnowledgeWriter
from projections.positions import read_checkpoints
from providers.embeddings import EmbedderSpec, EmbeddingError, Vectors
from providers.local_embeddings import LocalMiniLM
from providers.openai_embeddings import OpenAIEmbedder
from streams.inprocess import InProcessRunner
from tests.conftest import served, start_runtime
from tests.support.live_server import LiveServer
from tests.support.waiting import wait_until

CATALOG = [
    ("course", "Yoga for beginners",
     {"description": "Gentle stretching and breathing lessons for people who never practised yoga."},
     ["topic:yoga"], "published"),
    ("blog_post", "Filing quarterly taxes",
     {"content": "How small companies file quarterly tax returns and avoid late penalties."},
     ["topic:finance"], "published"),
    ("creator", "Chef Marta", {"bio": "Italian chef sharing pasta recipes and home cooking videos."},
     ["topic:cooking"], "published"),
    ("course", "Sourdough bread at home",
     {"description": "Bake crusty sourdough loaves with a starter you feed every day."},
     ["topic:cooking"], "draft"),
    ("video", "Marathon training plan",
     {"description": "A sixteen week running schedule to finish your first marathon."},
     ["topic:fitness"], "published"),
]


@pytest.fixture
def knowledge_runtime(fresh_db: ConnectionInfo) -> Iterator[Runtime]:
    rt = start_runtime(fresh_db, run_knowledge=True)
    yield rt
    rt.close()


@pytest.fixture
def http(knowledge_runtime: Runtime) -> Iterator[httpx.Client]:
    with served(knowledge_runtime, timeout=60) as client:
        yield client


def create(http: httpx.Client, type_: str, name: str, properties: dict[str, Any],
           tags: Sequence[str] = (), status: str = "published") -> dict[str, Any]:
    response = http.post("/v1/things", json={"type": type_, "name": name, "properties": properties,
                                             "tags": list(tags), "status": status})
    assert response.status_code == 201, response.text
    return dict(response.json())


def seed(http: httpx.Client) -> tuple[dict[str, str], int]:
    """The catalog's things: ids by name, and the last position written."""
    ids, position = {}, 0
    for type_, name, props, tags, status in CATALOG:
        made = create(http, type_, name, props, tags, status)
        ids[name], position = made["id"], made["position"]
    return ids, position


def search(http: httpx.Client, q: str, **params: Any) -> list[dict[str, Any]]:
    response = http.get("/v1/search", params={"q": q, **params})
    assert response.status_code == 200, response.text
    return list(response.json()["results"])


def names(results: list[dict[str, Any]]) -> list[str]:
    return [r["name"] for r in results]


def test_new_things_are_findable_by_meaning(http: httpx.Client) -> None:
    _, position = seed(http)
    results = search(http, "learn to relax and stretch your body", mode="semantic", after=position)
    assert names(results)[0] == "Yoga for beginners"
    assert results[0]["score"] > results[-1]["score"]
    assert {"id", "type", "name", "score", "status", "tags", "snippet"} <= set(results[0])
    assert names(search(http, "how to make bread dough rise", mode="semantic"))[0] == \
        "Sourdough bread at home"
    assert names(search(http, "paying the government on time", mode="semantic"))[0] == \
        "Filing quarterly taxes"


def test_keyword_and_hybrid_search_with_filters(http: httpx.Client) -> None:
    _, position = seed(http)
    keyword = search(http, "sourdough", mode="keyword", after=position)
    assert names(keyword) == ["Sourdough bread at home"]
    assert search(http, "zeppelin", mode="keyword") == []
    assert set(names(search(http, "recipes", mode="hybrid", tag="topic:cooking"))) == {
        "Chef Marta", "Sourdough bread at home"}
    for mode in ("semantic", "keyword", "hybrid"):
        cooking = search(http, "cooking", mode=mode, tag="topic:cooking")
        assert cooking and all("topic:cooking" in r["tags"] for r in cooking)
        courses = search(http, "learn something new", mode=mode, type="course")
        assert all(r["type"] == "course" for r in courses)
        drafts = search(http, "bread", mode=mode, status="draft")
        assert all(r["status"] == "draft" for r in drafts)
    assert names(search(http, "food", mode="semantic", type="course", tag="topic:cooking")) == [
        "Sourdough bread at home"]
    assert len(search(http, "anything at all", mode="semantic", limit=2)) == 2


def test_updates_deletes_and_restores_change_what_is_found(http: httpx.Client) -> None:
    ids, _ = seed(http)
    marathon = ids["Marathon training plan"]
    updated = http.patch(f"/v1/things/{marathon}", json={
        "name": "Watercolour painting", "properties": {"description": "Paint landscapes with watercolours."}})
    assert updated.status_code == 200, updated.text
    found = search(http, "painting with a brush", mode="semantic", after=updated.json()["position"])
    assert names(found)[0] == "Watercolour painting"
    assert "Marathon" not in " ".join(r["snippet"] for r in found)
    deleted = http.delete(f"/v1/things/{marathon}")
    assert deleted.status_code == 200, deleted.text
    after_delete = search(http, "watercolour painting", mode="hybrid", after=deleted.json()["position"])
    assert marathon not in [r["id"] for r in after_delete]
    restored = http.post(f"/v1/things/{marathon}/restore")
    assert restored.status_code == 200, restored.text
    back = search(http, "watercolour painting", mode="hybrid", after=restored.json()["position"])
    assert back[0]["id"] == marathon


def test_long_text_is_chunked_and_context_returns_chunks_with_their_thing(
    http: httpx.Client, knowledge_runtime: Runtime,
) -> None:
    filler = " ".join(f"The clone answers questions about topic number {i}." for i in range(60))
    secret = "The tea ceremony uses matcha whisked in a bamboo bowl."
    made = create(http, "knowledge_item", "Creator handbook", {"content": f"{filler} {secret} {filler}"})
    seed(http)
    response = http.post("/v1/knowledge/context", json={
        "question": "What kind of tea is whisked in the ceremony?", "limit": 3, "after": made["position"]})
    assert response.status_code == 200, response.text
    body = response.json()
    top = body["chunks"][0]
    assert top["thing"]["id"] == made["id"] and "matcha" in top["text"]
    assert top["thing"]["name"] == "Creator handbook" and body["model"]
    with psycopg.connect(knowledge_runtime.db.conninfo) as conn:
        index = active_index(conn)
        assert index is not None
        count = conn.execute(sql.SQL("SELECT count(*) FROM {} WHERE thing_id = %s").format(index.chunks),
                             (made["id"],)).fetchone()
    assert count is not None and count[0] > 3


def test_bad_search_input_gets_problem_details(http: httpx.Client) -> None:
    cases: list[tuple[dict[str, str | int], str]] = [
             ({"q": ""}, "q"), ({"q": "  "}, "q"), ({"q": "x", "mode": "fuzzy"}, "mode"),
             ({"q": "x", "type": "spaceship"}, "type"), ({"q": "x", "tag": "no-colon"}, "tag"),
             ({"q": "x", "status": "flying"}, "status"), ({"q": "x", "limit": 0}, "limit"),
             ({"q": "x", "limit": 101}, "limit")]
    for params, field in cases:
        response = http.get("/v1/search", params=params)
        assert response.status_code == 422, (params, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["code"] == "validation_error" and response.json()["field"] == field
    bad_context = http.post("/v1/knowledge/context", json={"question": "x", "limit": 5, "extra": 1})
    assert bad_context.status_code == 422 and bad_context.json()["field"] == "extra"


def snapshot_index(db: ConnectionInfo, index: KnowledgeIndex) -> tuple[list[Any], list[Any]]:
    with psycopg.connect(db.conninfo) as conn:
        docs = conn.execute(sql.SQL("SELECT * FROM {} ORDER BY thing_id").format(index.documents)).fetchall()
        chunks = conn.execute(sql.SQL(
            "SELECT thing_id, chunk_no, text, embedding::text FROM {} ORDER BY 1, 2").format(index.chunks)
        ).fetchall()
    return docs, chunks


def test_reapplying_the_log_changes_nothing(fresh_db: ConnectionInfo) -> None:
    rt = start_runtime(fresh_db, run_knowledge=True)
    with served(rt, timeout=60) as http:
        ids, _ = seed(http)
        http.patch(f"/v1/things/{ids['Chef Marta']}", json={"properties": {"bio": "Chef and author."}})
        search(http, "chef", after=rt.head())
    rt.close()
    db = fresh_db
    with psycopg.connect(db.conninfo, autocommit=True) as conn:
        index = active_index(conn)
        assert index is not None
        before = snapshot_index(db, index)
        event_log = open_event_log(db)
        writer = KnowledgeWriter(index, LocalMiniLM(), TextFields())
        runner = InProcessRunner(event_log, db, writer)
        runner.checkpoints = {index.checkpoint: 0}  # deliver the whole log again
        runner.catch_up(conn)
        event_log.close()
    assert snapshot_index(db, index) == before
    assert len(before[0]) == len(CATALOG)


class PoisonedModel(LocalMiniLM):
    """The local model behind an OpenAI-compatible server that fails texts containing POISON
    (until it is cured)."""

    cured = False

    def embed(self, texts: Sequence[str]) -> Vectors:
        if not self.cured and any("POISON" in t for t in texts):
            raise EmbeddingError("model crashed on this input")
        return super().embed(texts)


def test_failing_embeddings_are_parked_without_blocking(fresh_db: ConnectionInfo) -> None:
    rt = start_runtime(fresh_db)
    try:
        model = PoisonedModel()
        with LiveServer(create_embeddings_app(model)) as server:
            embedder = OpenAIEmbedder(model=LocalMiniLM().spec.model, base_url=f"{server.url}/v1",
                                      max_retries=0)
            with psycopg.connect(fresh_db.conninfo, autocommit=True) as conn:
                index = find_or_create(conn, embedder.spec, embedder.dimension)
                writer = KnowledgeWriter(index, embedder, TextFields(), retries=1, backoff_s=0.01)
                runner = InProcessRunner(rt.event_log, fresh_db, writer)
                good = rt.bus.execute(_create("Gardening basics", "Grow tomatoes on a balcony")).body
                bad = rt.bus.execute(_create("Broken", "POISON pill")).body
                also_good = rt.bus.execute(_create("Knitting", "Knit a warm scarf")).body
                runner.catch_up(conn)
                assert read_checkpoints(conn, writer.names)[index.checkpoint] >= also_good["position"]
                parked = conn.execute(
                    "SELECT stream_id, error, projection FROM projection_errors").fetchall()
                assert [(p[0], p[2]) for p in parked] == [(bad["id"], index.checkpoint)]
                assert "embedding failed" in parked[0][1]
                assert _embedded_ids(conn, index) == {good["id"], also_good["id"]}
                assert writer.retry_failed(conn) == (0, 1)  # still failing: still reported
                assert _error_of(conn, index, bad["id"]) is not None
                model.cured = True
                assert writer.retry_failed(conn) == (1, 0)
                assert _embedded_ids(conn, index) == {good["id"], also_good["id"], bad["id"]}
                assert _error_of(conn, index, bad["id"]) is None
                model.cured = False
                poisoned_again = rt.bus.execute(_update(good["id"], "POISON again")).body
                runner.catch_up(conn)  # a failing update keeps the previous chunks searchable
                assert read_checkpoints(conn, writer.names)[index.checkpoint] >= poisoned_again["position"]
                assert good["id"] in _embedded_ids(conn, index)
                assert _error_of(conn, index, good["id"]) is not None
    finally:
        rt.close()


class RefusingModel(LocalMiniLM):
    """The local model behind an OpenAI-compatible server that refuses (400) texts containing
    POISON until it is cured (no SDK retries, so the test stays quick)."""

    cured = False

    def embed(self, texts: Sequence[str]) -> Vectors:
        if not self.cured and any("POISON" in t for t in texts):
            raise OpenAIApiError(400, "this input cannot be embedded", param="input")
        return super().embed(texts)


def test_parked_embeddings_heal_by_themselves_once_the_embedder_works(fresh_db: ConnectionInfo) -> None:
    model = RefusingModel()
    with LiveServer(create_embeddings_app(model)) as server:
        rt = start_runtime(fresh_db, run_knowledge=True, embedder="openai", embedding_model=model.spec.model,
                           openai_base_url=f"{server.url}/v1", knowledge_retry_s=0.3)
        try:
            with served(rt, timeout=60) as http:
                bad = create(http, "course", "Broken", {"description": "POISON pill"})
                good = create(http, "course", "Knitting", {"description": "Knit a warm scarf"})
                assert names(search(http, "knitting wool", mode="semantic", after=good["position"]))[0] == \
                    "Knitting"
                assert bad["id"] not in [r["id"] for r in search(http, "pill", mode="keyword")]
                with psycopg.connect(fresh_db.conninfo) as conn:
                    parked = conn.execute("SELECT stream_id FROM projection_errors").fetchall()
                assert parked == [(bad["id"],)]
                model.cured = True
                wait_until(lambda: bad["id"] in [r["id"] for r in search(http, "pill", mode="keyword")],
                           "the failed document to be re-embedded", timeout=30)
        finally:
            rt.close()


def _create(name: str, description: str) -> Any:
    from commands.models import CreateThing

    return CreateThing(type="course", name=name, properties={"description": description})


def _update(thing_id: str, description: str) -> Any:
    from uuid import UUID

    from commands.models import UpdateThing

    return UpdateThing(id=UUID(thing_id), properties={"description": description})


def _error_of(conn: psycopg.Connection[Any], index: KnowledgeIndex, thing_id: str) -> str | None:
    row = conn.execute(sql.SQL("SELECT error FROM {} WHERE thing_id = %s").format(index.documents),
                       (thing_id,)).fetchone()
    assert row is not None
    return row[0]  # type: ignore[no-any-return]


def _embedded_ids(conn: psycopg.Connection[Any], index: KnowledgeIndex) -> set[str]:
    rows = conn.execute(sql.SQL("SELECT DISTINCT thing_id::text FROM {}").format(index.chunks)).fetchall()
    return {r[0] for r in rows}


class SlowModel(LocalMiniLM):
    """The local model taking its time, so a rebuild lasts long enough to be watched."""

    def embed(self, texts: Sequence[str]) -> Vectors:
        time.sleep(0.5)
        return super().embed(texts)


def test_switching_the_model_rebuilds_a_new_index_while_the_old_serves(fresh_db: ConnectionInfo) -> None:
    first = start_runtime(fresh_db, run_knowledge=True)
    with served(first, timeout=60) as http:
        seed(http)
        for i in range(40):
            create(http, "blog_post", f"Post {i}", {"content": f"Notes number {i} about gardening and soil."})
        assert names(search(http, "bread baking", mode="semantic", after=first.head()))[0] == \
            "Sourdough bread at home"
    first.close()

    with LiveServer(create_embeddings_app(SlowModel())) as embeddings:
        second = start_runtime(fresh_db, run_knowledge=True, embedder="openai",
                               embedding_model=LocalMiniLM().spec.model,
                               openai_base_url=f"{embeddings.url}/v1")
        try:
            seen: list[str] = []
            stop = threading.Event()
            with served(second, timeout=60) as http:
                def keep_searching() -> None:
                    while not stop.is_set():
                        response = http.get("/v1/search", params={"q": "bread baking", "mode": "semantic"})
                        assert response.status_code == 200, response.text
                        body = response.json()
                        assert body["results"][0]["name"] == "Sourdough bread at home"
                        seen.append(body["index"])

                searcher = threading.Thread(target=keep_searching)
                searcher.start()
                knowledge = second.knowledge
                assert knowledge is not None
                wait_until(lambda: knowledge.builder is None, "the new index to catch up", timeout=120)
                wait_until(lambda: seen and seen[-1] == "k2", "a search served by the new index")
                stop.set()
                searcher.join(timeout=30)
            assert seen[0] == "k1" and seen[-1] == "k2", seen
            assert seen == sorted(seen)  # never back to the old index after the swap
            with psycopg.connect(fresh_db.conninfo) as conn:
                live_indexes = list_indexes(conn)
                old_table = conn.execute("SELECT to_regclass('knowledge_k1_chunks')").fetchone()
            assert [(i.name, i.status, i.spec.provider) for i in live_indexes] == [("k2", "active", "openai")]
            assert old_table == (None,)
            assert EmbedderSpec.from_dict(live_indexes[0].spec.to_dict()) == live_indexes[0].spec
        finally:
            second.close()


def test_status_and_metrics_report_the_knowledge_index(http: httpx.Client) -> None:
    _, position = seed(http)
    search(http, "yoga", after=position)
    status = http.get("/v1/projections").json()
    assert status["knowledge"]["projected"] >= position
    assert any(item["name"] == "knowledge:k1" for item in status["items"])
    assert "one_knowledge_lag_events" in http.get("/metrics").text


def test_filtered_search_is_the_same_through_hnsw_and_exact_ranking(
    http: httpx.Client, knowledge_runtime: Runtime,
) -> None:
    _, position = seed(http)
    search(http, "anything", after=position)
    embedder = LocalMiniLM()
    with knowledge_runtime.reads.connection() as conn:
        index = active_index(conn)
        assert index is not None
        for text, filters in [("cooking at home", Filters(tag="topic:cooking")),
                              ("a course", Filters(type="course", status="published")),
                              ("money", Filters())]:
            vector = embedder.embed([text])[0]
            exact = nearest_chunks(conn, index, vector, filters, 5, exact_below=10**9)
            approximate = nearest_chunks(conn, index, vector, filters, 5, exact_below=0)
            assert [h["id"] for h in exact] == [h["id"] for h in approximate]
            assert [round(h["score"], 5) for h in exact] == [round(h["score"], 5) for h in approximate]
            assert exact, text
