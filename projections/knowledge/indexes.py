"""The registry of knowledge indexes: one per embedding model, at most one active at a time.

An index is a pair of tables (`knowledge_<name>_documents`, `knowledge_<name>_chunks`) built by
the vector projection with one embedder. Switching the model creates a new index in status
`building` while the active one keeps serving; `activate` swaps them in one transaction and the
old index is dropped. Searches read whichever index is active.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from infra.locks import KNOWLEDGE_INDEXES
from providers.embeddings import EmbedderSpec


@dataclass(frozen=True)
class KnowledgeIndex:
    """One vector index: its name, the embedder that fills it, and its lifecycle status."""

    name: str
    spec: EmbedderSpec
    dimension: int
    status: str

    @property
    def checkpoint(self) -> str:
        """The name under which the projection's log position is checkpointed."""
        return f"knowledge:{self.name}"

    @property
    def documents(self) -> sql.Identifier:
        """Table of one row per thing: filters, text fields, version guard."""
        return sql.Identifier(f"knowledge_{self.name}_documents")

    @property
    def chunks(self) -> sql.Identifier:
        """Table of embedded chunks (vector + full-text) per thing."""
        return sql.Identifier(f"knowledge_{self.name}_chunks")


def _row_to_index(row: tuple[Any, ...]) -> KnowledgeIndex:
    name, spec, dimension, status = row
    return KnowledgeIndex(str(name), EmbedderSpec.from_dict(spec), int(dimension), str(status))


def list_indexes(conn: psycopg.Connection[Any]) -> list[KnowledgeIndex]:
    """Every index that is not retired, oldest first."""
    rows = conn.execute(
        "SELECT name, spec, dimension, status FROM knowledge_indexes"
        " WHERE status <> 'retired' ORDER BY created_at, name"
    ).fetchall()
    return [_row_to_index(r) for r in rows]


_ACTIVE = "SELECT name, spec, dimension, status FROM knowledge_indexes WHERE status = 'active'"


def active_index(conn: psycopg.Connection[Any]) -> KnowledgeIndex | None:
    """The index searches use (None before the first one is activated)."""
    row = conn.execute(_ACTIVE).fetchone()
    return None if row is None else _row_to_index(row)


def hold_active_index(conn: psycopg.Connection[Any]) -> KnowledgeIndex | None:
    """The active index, row-locked (FOR SHARE) until the caller's transaction ends, so a swap
    waits for this reader or writer instead of dropping the tables under it.

    A read that waited for a swap to commit finds no active row (the old one was retired, the new
    one was not active in its snapshot): the next statement's snapshot sees the new one."""
    for _ in range(3):
        row = conn.execute(_ACTIVE + " FOR SHARE").fetchone()
        if row is not None:
            return _row_to_index(row)
    return None


def create_index(conn: psycopg.Connection[Any], spec: EmbedderSpec, dimension: int) -> KnowledgeIndex:
    """Register a new `building` index for `spec` and create its tables."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (KNOWLEDGE_INDEXES,))
        (number,) = conn.execute("SELECT count(*) + 1 FROM knowledge_indexes").fetchone() or (1,)
        index = KnowledgeIndex(f"k{number}", spec, dimension, "building")
        conn.execute(
            "INSERT INTO knowledge_indexes (name, spec, dimension, status) VALUES (%s, %s, %s, %s)",
            (index.name, Jsonb(spec.to_dict()), dimension, index.status),
        )
        _create_tables(conn, index)
    return index


def _create_tables(conn: psycopg.Connection[Any], index: KnowledgeIndex) -> None:
    conn.execute(sql.SQL("""
        CREATE TABLE {documents} (
            thing_id uuid PRIMARY KEY,
            org_id text NOT NULL,
            type text NOT NULL,
            name text NOT NULL,
            status text NOT NULL,
            tags text[] NOT NULL,
            deleted boolean NOT NULL,
            fields jsonb NOT NULL,
            text_hash text NOT NULL,
            embedded_hash text,
            error text,
            version int NOT NULL,
            position bigint NOT NULL
        );
        CREATE TABLE {chunks} (
            thing_id uuid NOT NULL,
            chunk_no int NOT NULL,
            text text NOT NULL,
            tsv tsvector GENERATED ALWAYS AS (to_tsvector('english', text)) STORED,
            embedding vector({dimension}) NOT NULL,
            PRIMARY KEY (thing_id, chunk_no)
        );
        CREATE INDEX {hnsw} ON {chunks} USING hnsw (embedding vector_cosine_ops)
            WITH (m = 16, ef_construction = 128);
        CREATE INDEX {tsv} ON {chunks} USING gin (tsv);
        CREATE INDEX {by_type} ON {documents} (type);
        CREATE INDEX {by_status} ON {documents} (status);
        CREATE INDEX {by_org} ON {documents} (org_id);
        CREATE INDEX {by_tag} ON {documents} USING gin (tags);
        CREATE INDEX {failed} ON {documents} (thing_id) WHERE error IS NOT NULL;
    """).format(
        documents=index.documents, chunks=index.chunks, dimension=sql.Literal(index.dimension),
        **{key: sql.Identifier(f"knowledge_{index.name}_{key}")
           for key in ("hnsw", "tsv", "by_type", "by_status", "by_org", "by_tag", "failed")},
    ))


def find_or_create(conn: psycopg.Connection[Any], spec: EmbedderSpec, dimension: int) -> KnowledgeIndex:
    """The live (active or building) index built with `spec`, created if there is none."""
    for index in list_indexes(conn):
        if index.spec == spec:
            return index
    return create_index(conn, spec, dimension)


def activate(conn: psycopg.Connection[Any], index: KnowledgeIndex) -> KnowledgeIndex | None:
    """Make `index` the active one and retire the previous (returned, to be dropped).

    Waits for in-flight writers that hold the active index (`active_index(lock=True)`)."""
    with conn.transaction():
        previous = active_index(conn)
        conn.execute(
            "UPDATE knowledge_indexes SET status = 'retired' WHERE status = 'active' AND name <> %s",
            (index.name,),
        )
        conn.execute(
            "UPDATE knowledge_indexes SET status = 'active', activated_at = now() WHERE name = %s",
            (index.name,),
        )
    return previous if previous is not None and previous.name != index.name else None


def drop_index(conn: psycopg.Connection[Any], index: KnowledgeIndex) -> None:
    """Remove a retired (or abandoned building) index's tables and checkpoint."""
    with conn.transaction():
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}, {}").format(index.chunks, index.documents))
        conn.execute("UPDATE knowledge_indexes SET status = 'retired' WHERE name = %s", (index.name,))
        conn.execute("DELETE FROM projection_checkpoints WHERE name = %s", (index.checkpoint,))


def index_stats(conn: psycopg.Connection[Any], index: KnowledgeIndex) -> dict[str, object]:
    """What an index holds: documents, live ones, chunks, documents whose embedding failed."""
    row = conn.execute(sql.SQL(
        "SELECT (SELECT count(*) FROM {docs}), (SELECT count(*) FROM {docs} WHERE NOT deleted),"
        " (SELECT count(*) FROM {chunks}), (SELECT count(*) FROM {docs} WHERE error IS NOT NULL),"
        " (SELECT position FROM projection_checkpoints WHERE name = %s)"
    ).format(docs=index.documents, chunks=index.chunks), (index.checkpoint,)).fetchone()
    assert row is not None
    documents, live, chunks, failed, position = row
    return {"name": index.name, "status": index.status, "provider": index.spec.provider,
            "model": index.spec.model, "dimension": index.dimension, "documents": documents,
            "live_documents": live, "chunks": chunks, "failed": failed, "position": position or 0}
