"""Search over a knowledge index: semantic (pgvector HNSW, cosine), keyword (PostgreSQL full-text)
and hybrid (reciprocal rank fusion of the two), with type/tag/status/org filters; and the RAG
context step (the chunks nearest to a question, with their things).

Results are per thing: a thing's score is that of its best chunk, whose text comes back as the
`snippet`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg
from psycopg import sql

from projections.knowledge.indexes import KnowledgeIndex

MODES = ("semantic", "keyword", "hybrid")
RRF_K = 60
"""Reciprocal rank fusion constant (Cormack et al.): score = sum of 1 / (RRF_K + rank)."""
CHUNKS_PER_THING = 4
"""How many chunks to fetch per wanted thing before keeping each thing's best one."""
EF_SEARCH = 200
"""HNSW candidate list size (recall@10 0.97 at 100k vectors with m=16, ef_construction=128)."""
KEYWORD_CANDIDATES = 2_000
"""Most matching chunks ranked per keyword query: ranking reads every match's text vector, so a
very common word would otherwise cost ~5 µs per match (PostgreSQL has no top-k text index)."""
HYBRID_KEYWORD_CANDIDATES = 500
"""The keyword side of a hybrid search ranks fewer matches: the semantic side carries recall."""
EXACT_BELOW = 10_000
"""A filter matching fewer documents than this is searched exactly (no HNSW): faster and exact."""


@dataclass(frozen=True)
class Filters:
    """Restrict results to things of a type, with a tag, in a status, of an organization."""

    type: str | None = None
    tag: str | None = None
    status: str | None = None
    org_id: str | None = None
    thing_ids: tuple[str, ...] | None = None
    """Only these things (e.g. the knowledge an AI clone is trained on)."""

    @property
    def narrowing(self) -> bool:
        """True when any filter is set."""
        return any(v is not None for v in (self.type, self.tag, self.status, self.org_id, self.thing_ids))

    def where(self) -> tuple[sql.Composable, list[Any]]:
        """SQL conditions on the documents table `d`, and their parameters."""
        conditions: list[sql.Composable] = [sql.SQL("NOT d.deleted")]
        params: list[Any] = []
        for column, value in (("type", self.type), ("status", self.status), ("org_id", self.org_id)):
            if value is not None:
                conditions.append(sql.SQL("d.{} = %s").format(sql.Identifier(column)))
                params.append(value)
        if self.tag is not None:
            conditions.append(sql.SQL("d.tags @> ARRAY[%s]::text[]"))
            params.append(self.tag)
        if self.thing_ids is not None:
            conditions.append(sql.SQL("d.thing_id = ANY(%s::uuid[])"))
            params.append(list(self.thing_ids))
        return sql.SQL(" AND ").join(conditions), params


def vector_literal(vector: npt.NDArray[np.float32]) -> str:
    """A query vector as pgvector's text form."""
    return "[" + ",".join(f"{x:.7g}" for x in vector.tolist()) + "]"


_HIT_COLUMNS = sql.SQL("d.thing_id::text, d.type, d.name, d.status, d.tags, d.org_id, c.chunk_no, c.text")


def _hit(row: tuple[Any, ...], score: float) -> dict[str, Any]:
    thing_id, type_, name, status, tags, org_id, chunk_no, text = row
    return {"id": thing_id, "type": type_, "name": name, "status": status, "tags": list(tags),
            "org_id": org_id, "score": score, "chunk": chunk_no, "snippet": text}


def _best_per_thing(hits: list[dict[str, Any]], limit: int) -> list[dict[str, Any]]:
    """Keep each thing's first (best) hit, in order, up to `limit` things."""
    seen: dict[str, dict[str, Any]] = {}
    for hit in hits:
        seen.setdefault(hit["id"], hit)
        if len(seen) == limit:
            break
    return list(seen.values())


def _few_match(conn: psycopg.Connection[Any], index: KnowledgeIndex, filters: Filters, below: int) -> bool:
    """True when the filters leave fewer than `below` documents (counted up to that)."""
    if not filters.narrowing or below <= 0:
        return False
    where, params = filters.where()
    row = conn.execute(sql.SQL("SELECT count(*) FROM (SELECT 1 FROM {} d WHERE {} LIMIT %s) s").format(
        index.documents, where), (*params, below)).fetchone()
    return row is not None and int(row[0]) < below


def nearest_chunks(
    conn: psycopg.Connection[Any], index: KnowledgeIndex, vector: npt.NDArray[np.float32],
    filters: Filters, limit: int, ef_search: int = EF_SEARCH, exact_below: int = EXACT_BELOW,
) -> list[dict[str, Any]]:
    """The `limit` chunks nearest to `vector` (cosine), best first, as hits scored 1 - distance.

    Uses the HNSW index with pgvector's iterative scan, so filters that remove many candidates
    still return up to `limit` rows; when the filters leave few documents, it ranks just those
    exactly instead (through the documents' indexes), which is both faster and exact."""
    where, params = filters.where()
    exact = _few_match(conn, index, filters, exact_below)
    order = "(c.embedding <=> %s::vector) + 0" if exact else "c.embedding <=> %s::vector"  # +0: no HNSW
    query = sql.SQL(
        "SELECT {cols}, c.embedding <=> %s::vector AS distance FROM {chunks} c"
        " JOIN {docs} d ON d.thing_id = c.thing_id WHERE {where} ORDER BY {order} LIMIT %s"
    ).format(cols=_HIT_COLUMNS, chunks=index.chunks, docs=index.documents, where=where,
             order=sql.SQL(order))
    literal = vector_literal(vector)
    with conn.transaction():
        conn.execute(sql.SQL("SET LOCAL hnsw.ef_search = {}").format(sql.Literal(max(ef_search, limit))))
        conn.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
        rows = conn.execute(query, (literal, *params, literal, limit)).fetchall()
    hits = [_hit(row[:-1], 1.0 - float(row[-1])) for row in rows]
    return sorted(hits, key=lambda h: -h["score"])  # relaxed order: re-sort the few rows


def semantic(
    conn: psycopg.Connection[Any], index: KnowledgeIndex, vector: npt.NDArray[np.float32],
    filters: Filters, limit: int,
) -> list[dict[str, Any]]:
    """Things nearest in meaning (best chunk's cosine similarity)."""
    return _best_per_thing(nearest_chunks(conn, index, vector, filters, limit * CHUNKS_PER_THING), limit)


def keyword(
    conn: psycopg.Connection[Any], index: KnowledgeIndex, text: str, filters: Filters, limit: int,
    candidates: int = KEYWORD_CANDIDATES,
) -> list[dict[str, Any]]:
    """Things whose text matches the words (web-search syntax: "quotes", OR, -not), by ts_rank_cd
    over at most `candidates` matching chunks."""
    where, params = filters.where()
    query = sql.SQL(
        "SELECT {cols}, ts_rank_cd(c.tsv, q) AS rank FROM ("
        " SELECT c.thing_id, c.chunk_no FROM {chunks} c JOIN {docs} d ON d.thing_id = c.thing_id,"
        " websearch_to_tsquery('english', %s) q WHERE c.tsv @@ q AND {where} LIMIT %s) m"
        " JOIN {chunks} c USING (thing_id, chunk_no) JOIN {docs} d ON d.thing_id = c.thing_id,"
        " websearch_to_tsquery('english', %s) q ORDER BY rank DESC, c.thing_id LIMIT %s"
    ).format(cols=_HIT_COLUMNS, chunks=index.chunks, docs=index.documents, where=where)
    rows = conn.execute(query, (text, *params, candidates, text, limit * CHUNKS_PER_THING)).fetchall()
    return _best_per_thing([_hit(row[:-1], float(row[-1])) for row in rows], limit)


def fuse(rankings: list[list[dict[str, Any]]], limit: int) -> list[dict[str, Any]]:
    """Reciprocal rank fusion: each thing scores the sum of 1 / (RRF_K + rank) over the rankings."""
    scores: dict[str, float] = {}
    first: dict[str, dict[str, Any]] = {}
    for ranking in rankings:
        for rank, hit in enumerate(ranking, start=1):
            scores[hit["id"]] = scores.get(hit["id"], 0.0) + 1.0 / (RRF_K + rank)
            first.setdefault(hit["id"], hit)
    ordered = sorted(scores, key=lambda key: -scores[key])[:limit]
    return [{**first[key], "score": scores[key]} for key in ordered]


def hybrid(
    conn: psycopg.Connection[Any], index: KnowledgeIndex, text: str,
    vector: npt.NDArray[np.float32], filters: Filters, limit: int,
) -> list[dict[str, Any]]:
    """Semantic and keyword rankings fused by RRF (each ranking looks deeper than `limit`)."""
    depth = max(limit * 2, 20)
    return fuse([semantic(conn, index, vector, filters, depth),
                 keyword(conn, index, text, filters, depth, HYBRID_KEYWORD_CANDIDATES)], limit)


def context_chunks(
    conn: psycopg.Connection[Any], index: KnowledgeIndex, vector: npt.NDArray[np.float32],
    filters: Filters, limit: int,
) -> list[dict[str, Any]]:
    """The RAG step: the chunks nearest to a question, each with its thing."""
    return [
        {"thing_id": h["id"], "chunk": h["chunk"], "text": h["snippet"], "score": h["score"],
         "thing": {k: h[k] for k in ("id", "type", "name", "status", "tags", "org_id")}}
        for h in nearest_chunks(conn, index, vector, filters, limit)
    ]


def search(
    conn: psycopg.Connection[Any], index: KnowledgeIndex, embed: Callable[[str], npt.NDArray[np.float32]],
    text: str, mode: str, filters: Filters, limit: int,
) -> list[dict[str, Any]]:
    """Dispatch on `mode` (one of MODES); the query is embedded only when meaning is needed."""
    if mode == "keyword":
        return keyword(conn, index, text, filters, limit)
    if mode == "semantic":
        return semantic(conn, index, embed(text), filters, limit)
    return hybrid(conn, index, text, embed(text), filters, limit)
