"""The vector projection: thing events → documents → chunks → embeddings in one knowledge index.

For a chunk of the log it loads the documents the events touch, folds the events into them
(ignoring events a document already reflects: idempotent by thing version), embeds the chunks of
every document whose text changed (one batched call), and writes documents and chunks. A failed
embedding is retried with backoff; if it keeps failing, the batch is embedded document by
document so only the failing documents are rejected (parked and reported by the caller), keeping
their previous chunks, while the rest of the partition moves on. Such a document is embedded again
on its next change, by `retry_failed` (`one knowledge retry`), or by a reindex.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import psycopg
from pgvector.psycopg import register_vector
from psycopg import sql
from psycopg.types.json import Jsonb

from domain.knowledge import TextFields, chunk_text
from eventlog.envelope import Envelope
from projections.base import Rejected
from projections.knowledge.documents import THING_EVENTS, Document, fold
from projections.knowledge.indexes import KnowledgeIndex
from providers.embeddings import Embedder, EmbeddingError, Vectors

log = logging.getLogger(__name__)

_DOCUMENT_COLUMNS = (
    "thing_id, org_id, type, name, status, tags, deleted, fields, version, position, embedded_hash, error"
)


@dataclass
class KnowledgeWriter:
    """Writes one knowledge index with one embedder (the `Writer` of the vector projection)."""

    index: KnowledgeIndex
    embedder: Embedder
    text_fields: TextFields
    retries: int = 2
    backoff_s: float = 0.5

    @property
    def names(self) -> tuple[str, ...]:
        """The index's checkpoint name."""
        return (self.index.checkpoint,)

    def write(
        self, conn: psycopg.Connection[object], envelopes: Sequence[Envelope],
        since: dict[str, int] | None = None,
    ) -> list[Rejected]:
        """Fold, embed and store; return the events whose document could not be embedded."""
        after = since[self.index.checkpoint] if since is not None else 0
        events = [e for e in envelopes if e.position > after and e.type in THING_EVENTS]
        if not events:
            return []
        ids = list(dict.fromkeys(e.stream_id for e in events))
        before = self._load(conn, sql.SQL("thing_id = ANY(%s::uuid[])"), (ids,))
        documents = dict(before)
        last_event: dict[str, Envelope] = {}
        for e in events:
            folded = fold(documents.get(e.stream_id), e)
            if folded is not None:
                documents[e.stream_id] = folded
                last_event[e.stream_id] = e
        changed = [d for key, d in documents.items() if d is not before.get(key)]
        pending = self._chunks([d for d in changed if d.needs_embedding(self.text_fields)])
        vectors, failures = self._embed(pending)
        self._store(conn, changed, pending, vectors, failures)
        return [Rejected(last_event[key], f"embedding failed: {error}") for key, error in failures.items()]

    def retry_failed(self, conn: psycopg.Connection[object]) -> tuple[int, int]:
        """Re-embed the documents whose embedding failed: (now embedded, still failing)."""
        with conn.transaction():
            failed = self._load(conn, sql.SQL("error IS NOT NULL AND NOT deleted"), ())
            if not failed:
                return 0, 0
            pending = self._chunks(list(failed.values()))
            vectors, failures = self._embed(pending)
            self._store(conn, list(failed.values()), pending, vectors, failures)
        return len(vectors), len(failures)

    def _chunks(self, documents: list[Document]) -> dict[str, list[str]]:
        """The chunk texts to embed, per thing."""
        return {d.thing_id: chunk_text(d.name, d.text(self.text_fields)) for d in documents}

    def _load(self, conn: psycopg.Connection[object], where: sql.Composable,
              params: tuple[object, ...]) -> dict[str, Document]:
        query = sql.SQL("SELECT {} FROM {} WHERE {} FOR UPDATE").format(
            sql.SQL(_DOCUMENT_COLUMNS), self.index.documents, where)
        rows = conn.execute(query, params).fetchall()
        documents = [
            Document(thing_id=str(r[0]), org_id=r[1], type=r[2], name=r[3], status=r[4],  # type: ignore[index]
                     tags=tuple(r[5]), deleted=r[6], fields=r[7], version=r[8], position=r[9],  # type: ignore[index]
                     embedded_hash=r[10], error=r[11])  # type: ignore[index]
            for r in rows
        ]
        return {d.thing_id: d for d in documents}

    def _embed(self, pending: dict[str, list[str]]) -> tuple[dict[str, Vectors], dict[str, str]]:
        """Vectors per document; documents that keep failing go to the second map with the error."""
        if not pending:
            return {}, {}
        texts = [text for chunks in pending.values() for text in chunks]
        try:
            matrix = self._embed_with_retries(texts)
        except EmbeddingError as error:
            if len(pending) == 1:
                return {}, {key: str(error) for key in pending}
            log.warning("embedding %d documents failed (%s); isolating them one by one", len(pending), error)
            return self._embed_one_by_one(pending)
        vectors: dict[str, Vectors] = {}
        offset = 0
        for key, chunks in pending.items():
            vectors[key] = matrix[offset:offset + len(chunks)]
            offset += len(chunks)
        return vectors, {}

    def _embed_one_by_one(self, pending: dict[str, list[str]]) -> tuple[dict[str, Vectors], dict[str, str]]:
        vectors: dict[str, Vectors] = {}
        failures: dict[str, str] = {}
        for key, chunks in pending.items():
            try:
                vectors[key] = self.embedder.embed(chunks)
            except EmbeddingError as error:
                failures[key] = str(error)
        return vectors, failures

    def _embed_with_retries(self, texts: list[str]) -> Vectors:
        for attempt in range(self.retries + 1):
            try:
                return self.embedder.embed(texts)
            except EmbeddingError:
                if attempt == self.retries:
                    raise
                time.sleep(self.backoff_s * 2 ** attempt)
        raise AssertionError("unreachable")

    def _store(
        self, conn: psycopg.Connection[object], changed: list[Document], pending: dict[str, list[str]],
        vectors: dict[str, Vectors], failures: dict[str, str],
    ) -> None:
        rows = []
        for d in changed:
            current = d.text_hash(self.text_fields)
            embedded = current if d.thing_id in vectors else d.embedded_hash
            error = failures.get(d.thing_id) if d.thing_id in pending else d.error
            rows.append((d.thing_id, d.org_id, d.type, d.name, d.status, list(d.tags), d.deleted,
                         Jsonb(d.fields), current, embedded, error, d.version, d.position))
        replaced = [d.thing_id for d in changed if d.deleted or d.thing_id in vectors]
        if vectors:
            register_vector(conn)  # before the cursor: cursors copy the connection's adapters
        with conn.cursor() as cur:
            cur.executemany(sql.SQL(
                "INSERT INTO {docs} (thing_id, org_id, type, name, status, tags, deleted, fields, text_hash,"
                " embedded_hash, error, version, position)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (thing_id) DO UPDATE SET org_id = excluded.org_id, type = excluded.type,"
                " name = excluded.name, status = excluded.status, tags = excluded.tags,"
                " deleted = excluded.deleted, fields = excluded.fields, text_hash = excluded.text_hash,"
                " embedded_hash = excluded.embedded_hash, error = excluded.error,"
                " version = excluded.version, position = excluded.position"
                " WHERE {docs}.version <= excluded.version"
            ).format(docs=self.index.documents), rows)
            if replaced:
                cur.execute(sql.SQL("DELETE FROM {} WHERE thing_id = ANY(%s::uuid[])").format(
                    self.index.chunks), (replaced,))
            if vectors:
                cur.executemany(sql.SQL(
                    "INSERT INTO {} (thing_id, chunk_no, text, embedding) VALUES (%s, %s, %s, %s)"
                ).format(self.index.chunks), [
                    (key, number, text, np.asarray(vector, dtype=np.float32))
                    for key, matrix in vectors.items()
                    for number, (text, vector) in enumerate(zip(pending[key], matrix, strict=True))
                ])
