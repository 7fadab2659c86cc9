"""Search over a knowledge index at N vectors: HNSW recall and latency, beside exact search.

Data: `--real` generated sentences (30 topics, ~20 templates) are embedded with the real local
model (all-MiniLM-L6-v2 int8); the N stored vectors are normalised (real_i + gaussian noise,
`--sigma` per dimension), so they are clustered like real text without embedding N texts. Each
vector is one chunk (text = its source sentence) of one document (type, 1-2 tags, status, org).

The index is the one `create_index` makes (tables and every index as indexes.py defines them).
For COPY speed its secondary indexes are dropped, the rows loaded, and each index re-created
from the definition PostgreSQL recorded for it (same name, same method, same options), then the
tables analysed; the report checks that the definitions match the originals. `--builds
m:ef_construction,...` adds other HNSW builds for the recall rows (default: only indexes.py's);
the last one measured is indexes.py's, and it serves the latency rows.

Queries are other generated sentences (never in the set), embedded with the same model. Measured:
- recall@10 of `nearest_chunks` (the API's SQL) against exact cosine search in numpy, per
  hnsw.ef_search (the API uses search.EF_SEARCH), and of `semantic` and of `nearest_chunks` with
  a selective filter (type+tag, fewer than search.EXACT_BELOW documents: ranked exactly) and a
  non-selective one (status, about a third of the documents: HNSW with iterative scan);
- p50/p95/p99 of `semantic`, `keyword`, `hybrid` (the functions GET /v1/search runs), without a
  filter and with each of the two filters; query embedding (one text) apart;
- baseline: the same `nearest_chunks` SQL with index scans disabled (exact scan in PostgreSQL).

Usage: .venv/bin/python -m bench.search [--vectors 100000] [--real 2000] [--queries 200]
       [--builds 16:64,32:128] [--ef-search 40,100,200,400] [--sigma 0.03]
"""

from __future__ import annotations

import argparse
import os
import random
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import numpy.typing as npt
import psycopg
from psycopg import sql

from bench.common import (
    TAGS,
    THING_TYPES,
    fmt_ms,
    fmt_ratio,
    fresh_database,
    note,
    percentile,
    print_header,
    print_table,
)
from projections.knowledge.indexes import KnowledgeIndex
from projections.knowledge.search import (
    CHUNKS_PER_THING,
    EF_SEARCH,
    EXACT_BELOW,
    KEYWORD_CANDIDATES,
    Filters,
)

Matrix = npt.NDArray[np.float32]

TARGET_P99_MS = 50.0
TARGET_RECALL = 0.95
K = 10

# ---- generated sentences --------------------------------------------------------------------

TOPICS: dict[str, str] = {
    "fitness": "workout strength cardio squats deadlifts stretching endurance muscles gym treadmill"
               " kettlebells mobility recovery protein",
    "yoga": "yoga breathing meditation poses flexibility mindfulness balance posture relaxation vinyasa",
    "finance": "budget savings investing stocks bonds retirement portfolio dividends inflation mortgages",
    "crypto": "blockchain tokens wallets ethereum staking defi ledgers mining nfts exchanges",
    "music": "guitar chords melody rhythm songwriting piano drums harmony scales tempo vocals",
    "cooking": "recipes kitchen baking bread pasta sauces spices grilling vegetables dough seasoning",
    "design": "typography layout colour palettes branding logos grids sketching illustration interfaces",
    "programming": "python functions debugging algorithms databases testing refactoring compilers git",
    "ai": "neural networks machine learning training datasets embeddings transformers prompts inference",
    "photography": "cameras lenses aperture exposure lighting portraits landscapes shutter composition",
    "gardening": "garden soil seeds compost tomatoes pruning watering roses herbs greenhouse mulch",
    "travel": "flights hotels itineraries backpacking passports beaches mountains museums luggage trains",
    "parenting": "toddlers sleep tantrums school homework bedtime siblings discipline playtime",
    "marketing": "audience funnels newsletters conversion seo campaigns email ads analytics engagement",
    "writing": "novels characters plots chapters editing dialogue drafts publishing poetry storytelling",
    "languages": "spanish vocabulary grammar pronunciation verbs fluency conversation french japanese",
    "history": "empires revolutions ancient rome medieval wars kings archives dynasties civilization",
    "science": "physics chemistry experiments molecules energy gravity cells evolution telescopes",
    "health": "nutrition hydration vitamins stress heart blood pressure diet doctors immunity",
    "business": "startups founders revenue pricing customers sales hiring strategy investors growth",
    "gaming": "consoles multiplayer quests levels speedruns controllers esports streaming",
    "fashion": "outfits fabrics tailoring sneakers wardrobes trends denim accessories runways",
    "pets": "puppies training cats grooming vets leashes treats adoption aquariums",
    "home": "renovation paint furniture plumbing tiles lamps insulation decluttering",
    "film": "cinema directors screenplays actors documentaries festivals scenes cinematography",
    "sports": "football basketball tennis coaching tactics tournaments referees leagues",
    "climate": "carbon emissions solar wind recycling sustainability electric vehicles",
    "psychology": "habits motivation anxiety emotions therapy focus confidence memory",
    "education": "students teachers curriculum exams lectures classrooms tutoring homeschooling",
    "cars": "engines tyres brakes mechanics batteries maintenance driving motorways",
}
TEMPLATES = (
    "How to get started with {a} and {b} as a {level} {who}",
    "A {level} guide to {a}: {b}, {c} and common mistakes",
    "Why {a} matters more than {b} for every {who}",
    "{n} tips on {a} and {b} that changed my {time} routine",
    "Live session: {a}, {b} and {c} explained for {who}s",
    "My honest review of {a} after {n} weeks of {b}",
    "The {level} checklist for {a} with a focus on {b}",
    "What nobody tells you about {a} and {c}",
    "Q&A with a {who} about {a}, {b} and {c}",
    "Step by step: improving your {a} using {b}",
    "{time} notes on {a}: {b} versus {c}",
    "Podcast episode about {a}, {b} and the future of {c}",
    "Common myths about {a} debunked by a {level} {who}",
    "Building a {time} habit around {a} and {b}",
    "Case study: how a {who} used {a} to fix {b}",
    "{n} mistakes {level} people make with {a}",
    "From {a} to {b}: a short course for {who}s",
    "Community thread: share your {a} and {c} setup",
    "The science behind {a}, {b} and {c}",
    "Ask me anything about {a} and {b}",
)
LEVELS = ("beginner", "intermediate", "advanced", "expert", "casual")
WHO = ("student", "parent", "creator", "professional", "retiree", "coach", "freelancer", "teenager")
TIMES = ("morning", "evening", "weekly", "daily", "weekend", "monthly")


@dataclass(frozen=True)
class Sentence:
    """A generated text and the topic words it was built from (keyword queries use them)."""

    text: str
    words: tuple[str, ...]


def make_sentences(count: int, seed: int, exclude: set[str] | None = None) -> list[Sentence]:
    """`count` distinct sentences (none of `exclude`); 20% mix in a word from a second topic."""
    rng = random.Random(seed)
    vocab = {t: words.split() for t, words in TOPICS.items()}
    seen = set(exclude or ())
    out: list[Sentence] = []
    while len(out) < count:
        words = rng.sample(vocab[rng.choice(list(vocab))], 3)
        if rng.random() < 0.2:
            words[2] = rng.choice(vocab[rng.choice(list(vocab))])
        text = rng.choice(TEMPLATES).format(a=words[0], b=words[1], c=words[2], level=rng.choice(LEVELS),
                                            who=rng.choice(WHO), time=rng.choice(TIMES), n=rng.randint(3, 12))
        if text not in seen:
            seen.add(text)
            out.append(Sentence(text, tuple(words)))
    return out


def keyword_query(sentence: Sentence, rng: random.Random) -> str:
    """One or two of the sentence's topic words (what a person types into a search box)."""
    return " ".join(rng.sample(sentence.words, rng.randint(1, 2)))


# ---- synthetic corpus -----------------------------------------------------------------------


@dataclass
class Corpus:
    """N vectors, each one chunk of one document."""

    vectors: Matrix
    texts: list[str]
    ids: list[str]
    types: list[str]
    tags: list[list[str]]
    statuses: list[str]
    org: str

    def matches(self, filters: Filters) -> npt.NDArray[np.bool_]:
        """Which rows a type/tag/status filter keeps (every row has the same org)."""
        keep = np.ones(len(self.ids), dtype=bool)
        if filters.type is not None:
            keep &= np.array([t == filters.type for t in self.types])
        if filters.status is not None:
            keep &= np.array([s == filters.status for s in self.statuses])
        if filters.tag is not None:
            keep &= np.array([filters.tag in t for t in self.tags])
        return keep


def noisy_copies(real: Matrix, n: int, sigma: float, seed: int) -> tuple[Matrix, npt.NDArray[np.int64]]:
    """n unit vectors real[src] + N(0, sigma^2) per dimension, and each one's source row."""
    rng = np.random.default_rng(seed)
    src = rng.permutation(np.arange(n) % len(real))
    out = np.empty((n, real.shape[1]), dtype=np.float32)
    for start in range(0, n, 20_000):
        part = real[src[start:start + 20_000]]
        part = part + rng.standard_normal(part.shape, dtype=np.float32) * np.float32(sigma)
        out[start:start + len(part)] = part / np.linalg.norm(part, axis=1, keepdims=True)
    return out, src


def make_corpus(real: Matrix, sentences: Sequence[Sentence], n: int, sigma: float, seed: int) -> Corpus:
    """N noisy copies of the real embeddings with their documents' filter attributes."""
    from commands.handlers import SYSTEM_ORG_ID

    vectors, src = noisy_copies(real, n, sigma, seed)
    rng = random.Random(seed)
    return Corpus(
        vectors=vectors, texts=[sentences[i].text for i in src],
        ids=[str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(n)],
        types=[rng.choice(THING_TYPES) for _ in range(n)],
        tags=[rng.sample(TAGS, rng.randint(1, 2)) for _ in range(n)],
        statuses=[rng.choice(("draft", "published", "active")) for _ in range(n)],
        org=str(SYSTEM_ORG_ID),
    )


# ---- loading and index builds ---------------------------------------------------------------


def hnsw_name(index: KnowledgeIndex) -> str:
    """The HNSW index's name, as indexes.py names it."""
    return f"knowledge_{index.name}_hnsw"


def secondary_indexes(conn: psycopg.Connection[Any], index: KnowledgeIndex) -> dict[str, str]:
    """Every non-primary-key index on the index's two tables: name -> CREATE INDEX statement, as
    PostgreSQL records it (pg_get_indexdef)."""
    rows = conn.execute(
        "SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i"
        " JOIN pg_class c ON c.oid = i.indexrelid"
        " WHERE i.indrelid IN (%s::regclass, %s::regclass) AND NOT i.indisprimary ORDER BY c.relname",
        (f"knowledge_{index.name}_documents", f"knowledge_{index.name}_chunks"),
    ).fetchall()
    return {str(name): str(definition) for name, definition in rows}


def hnsw_options(conn: psycopg.Connection[Any], index: KnowledgeIndex) -> tuple[int, int]:
    """(m, ef_construction) of the HNSW index as it exists (its reloptions)."""
    row = conn.execute("SELECT reloptions FROM pg_class WHERE relname = %s", (hnsw_name(index),)).fetchone()
    options = dict(o.split("=", 1) for o in (row[0] if row and row[0] else ()))
    return int(options.get("m", 16)), int(options.get("ef_construction", 64))  # pgvector's defaults


def load(conn: psycopg.Connection[Any], index: KnowledgeIndex, corpus: Corpus, definitions: dict[str, str],
         ) -> float:
    """Drop every secondary index (`definitions`), COPY documents (text) and chunks (binary); seconds."""
    from pgvector.psycopg import register_vector
    from psycopg.types.json import Jsonb

    register_vector(conn)
    t0 = time.perf_counter()
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(sql.SQL("DROP INDEX {}").format(
            sql.SQL(", ").join(sql.Identifier(name) for name in definitions)))
        with cur.copy(sql.SQL(
            "COPY {} (thing_id, org_id, type, name, status, tags, deleted, fields, text_hash, embedded_hash,"
            " version, position) FROM STDIN").format(index.documents)) as cp:
            for i, thing_id in enumerate(corpus.ids):
                cp.write_row((thing_id, corpus.org, corpus.types[i], f"{corpus.types[i]} {i}",
                              corpus.statuses[i], corpus.tags[i], False,
                              Jsonb({"description": corpus.texts[i]}), "h", "h", 1, i + 1))
        with cur.copy(sql.SQL("COPY {} (thing_id, chunk_no, text, embedding) FROM STDIN WITH (FORMAT BINARY)")
                      .format(index.chunks)) as cp:
            cp.set_types(["uuid", "int4", "text", "vector"])
            for i, thing_id in enumerate(corpus.ids):
                cp.write_row((uuid.UUID(thing_id), 0, corpus.texts[i], corpus.vectors[i]))
    return time.perf_counter() - t0


def recreate(conn: psycopg.Connection[Any], definitions: dict[str, str], skip: str) -> dict[str, float]:
    """Re-create each index from its recorded definition (all but `skip`); seconds per index."""
    seconds: dict[str, float] = {}
    for name, definition in definitions.items():
        if name != skip:
            t0 = time.perf_counter()
            conn.execute(definition.encode())
            seconds[name] = time.perf_counter() - t0
    conn.execute("ANALYZE")
    return seconds


def build_hnsw(conn: psycopg.Connection[Any], index: KnowledgeIndex, m: int, ef_construction: int,
               definition: str | None) -> float:
    """(Re)create the HNSW index: from indexes.py's recorded `definition` when given, else with `m` /
    `ef_construction` (either way 1 GB work memory, 2 workers: build speed only); seconds."""
    hnsw = sql.Identifier(hnsw_name(index))
    conn.execute("SET maintenance_work_mem = '1GB'")
    conn.execute("SET max_parallel_maintenance_workers = 2")
    conn.execute(sql.SQL("DROP INDEX IF EXISTS {}").format(hnsw))
    statement = definition.encode() if definition is not None else sql.SQL(
        "CREATE INDEX {} ON {} USING hnsw (embedding vector_cosine_ops) WITH (m = {}, ef_construction = {})"
    ).format(hnsw, index.chunks, sql.Literal(m), sql.Literal(ef_construction))
    t0 = time.perf_counter()
    conn.execute(statement)
    seconds = time.perf_counter() - t0
    conn.execute("ANALYZE")
    return seconds


def relation_mb(conn: psycopg.Connection[Any], name: str) -> float:
    """On-disk size of a table or index in MB."""
    row = conn.execute("SELECT pg_total_relation_size(%s::regclass)", (name,)).fetchone()
    return float(row[0]) / 2**20 if row else float("nan")


# ---- plans ----------------------------------------------------------------------------------


def exact_path(conn: psycopg.Connection[Any], index: KnowledgeIndex, filters: Filters) -> bool:
    """Whether `nearest_chunks` ranks these filters' documents exactly (the product's own test)."""
    from projections.knowledge.search import _few_match

    return _few_match(conn, index, filters, EXACT_BELOW)


def nearest_plan(conn: psycopg.Connection[Any], index: KnowledgeIndex, vector: Matrix, filters: Filters,
                 index_off: bool = False) -> str:
    """EXPLAIN of the query `nearest_chunks` runs for `filters` (same SQL, path and settings)."""
    from projections.knowledge.search import vector_literal

    where, params = filters.where()
    distance = "c.embedding <=> %s::vector"
    order = f"({distance}) + 0" if exact_path(conn, index, filters) else distance
    query = sql.SQL(
        "EXPLAIN SELECT c.thing_id FROM {chunks} c JOIN {docs} d ON d.thing_id = c.thing_id WHERE {where}"
        " ORDER BY {order} LIMIT %s"
    ).format(chunks=index.chunks, docs=index.documents, where=where, order=sql.SQL(order))
    with conn.transaction():
        conn.execute(sql.SQL("SET LOCAL hnsw.ef_search = {}").format(sql.Literal(EF_SEARCH)))
        conn.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
        if index_off:
            conn.execute("SET LOCAL enable_indexscan = off")
        rows = conn.execute(query, (*params, vector_literal(vector), K)).fetchall()
    return "\n".join(r[0] for r in rows)


def uses_hnsw(plan: str, index: KnowledgeIndex) -> bool:
    """True when the plan scans the HNSW index."""
    return hnsw_name(index) in plan


# ---- measurements ---------------------------------------------------------------------------


def exact_top(corpus: Corpus, queries: Matrix, keep: npt.NDArray[np.bool_] | None = None) -> list[set[str]]:
    """Exact top-K ids by cosine per query (brute force in numpy; vectors are unit length)."""
    sims = queries @ corpus.vectors.T
    if keep is not None:
        sims[:, ~keep] = -np.inf
    top = np.argpartition(-sims, K, axis=1)[:, :K]
    return [{corpus.ids[j] for j in row} for row in top]


def timed(calls: Sequence[Callable[[], Any]]) -> tuple[list[float], list[Any]]:
    """Run each call once; per-call seconds and results."""
    seconds, results = [], []
    for call in calls:
        t0 = time.perf_counter()
        results.append(call())
        seconds.append(time.perf_counter() - t0)
    return seconds, results


def recall(results: Sequence[Sequence[dict[str, Any]]], truth: Sequence[set[str]]) -> float:
    """Mean share of the exact top-K found in each result's first K hits."""
    found = [len({h["id"] for h in hits[:K]} & want) / K for hits, want in zip(results, truth, strict=True)]
    return float(np.mean(found))


def pcts(seconds: Sequence[float]) -> tuple[float, float, float, float]:
    """p50, p95, p99, max in milliseconds."""
    s = sorted(seconds)
    return (percentile(s, 50) * 1e3, percentile(s, 95) * 1e3, percentile(s, 99) * 1e3, s[-1] * 1e3)


def lat_cells(seconds: Sequence[float]) -> tuple[str, ...]:
    """n, p50, p95, p99, max as table cells."""
    return (f"{len(seconds):,}", *(fmt_ms(x) for x in pcts(seconds)))


@dataclass
class Queries:
    """Query sentences, their embeddings, keyword phrases and those phrases' embeddings."""

    texts: list[str]
    vectors: Matrix
    phrases: list[str]
    phrase_vectors: Matrix

    def cycle(self, n: int) -> list[int]:
        """n query numbers, cycling through the set."""
        return [i % len(self.texts) for i in range(n)]


@dataclass(frozen=True)
class Case:
    """A search filter as the report names it, the share of documents it keeps and the path
    `nearest_chunks` takes for it (exact ranking of few documents, or HNSW with iterative scan)."""

    name: str
    filters: Filters
    share: float
    exact: bool

    @property
    def label(self) -> str:
        """Name, share and path (no commas: rows are keyed by the text after the last ', ')."""
        if not self.filters.narrowing:
            return self.name
        path = "exact path" if self.exact else "HNSW iterative scan"
        return f"{self.name} ({self.share:.1%} of docs: {path})"


def make_cases(conn: psycopg.Connection[Any], index: KnowledgeIndex, corpus: Corpus) -> list[Case]:
    """No filter, a selective filter (type + tag) and a non-selective one (status, ~1/3)."""
    cases = [("no filter", Filters()), (f"type=course tag={TAGS[3]}", Filters(type="course", tag=TAGS[3])),
             ("status=published", Filters(status="published"))]
    return [Case(name, f, float(corpus.matches(f).mean()), exact_path(conn, index, f)) for name, f in cases]


def recall_rows(conn: psycopg.Connection[Any], index: KnowledgeIndex, corpus: Corpus, queries: Queries,
                ef_values: Sequence[int], label: str) -> list[tuple[str, ...]]:
    """recall@10 and latency of `nearest_chunks` per ef_search, unfiltered."""
    from projections.knowledge.search import nearest_chunks

    truth = exact_top(corpus, queries.vectors)
    rows = []
    for ef in ef_values:
        note(f"{label}: recall at ef_search={ef}")
        seconds, results = timed([partial(nearest_chunks, conn, index, v, Filters(), K, ef)
                                  for v in queries.vectors])
        default = " (API default)" if ef == EF_SEARCH else ""
        rows.append((f"nearest_chunks, ef_search={ef}{default}", label, f"{recall(results, truth):.3f}",
                     *lat_cells(seconds)))
    return rows


def extra_recall_rows(conn: psycopg.Connection[Any], index: KnowledgeIndex, corpus: Corpus,
                      queries: Queries, cases: Sequence[Case], label: str) -> list[tuple[str, ...]]:
    """recall@10 of `semantic` (unfiltered) and of `nearest_chunks` with each filter, at the API's
    settings (ef_search EF_SEARCH, exact below EXACT_BELOW documents)."""
    from projections.knowledge.search import nearest_chunks, semantic

    truth = exact_top(corpus, queries.vectors)
    seconds, results = timed([partial(semantic, conn, index, v, Filters(), K) for v in queries.vectors])
    rows = [(f"semantic() ({K * CHUNKS_PER_THING} chunks, ef_search {EF_SEARCH})", label,
             f"{recall(results, truth):.3f}", *lat_cells(seconds))]
    for case in cases:
        if case.filters.narrowing:
            note(f"{label}: recall with {case.label}")
            truth = exact_top(corpus, queries.vectors, corpus.matches(case.filters))
            seconds, results = timed([partial(nearest_chunks, conn, index, v, case.filters, K)
                                      for v in queries.vectors])
            rows.append((f"nearest_chunks, {case.label}", label, f"{recall(results, truth):.3f}",
                         *lat_cells(seconds)))
    return rows


def exact_in_pg(conn: psycopg.Connection[Any], index: KnowledgeIndex, vector: Matrix, filters: Filters,
                limit: int) -> list[dict[str, Any]]:
    """`nearest_chunks` with index scans disabled: the same SQL as an exact scan and sort."""
    from projections.knowledge.search import nearest_chunks

    with conn.transaction():
        conn.execute("SET LOCAL enable_indexscan = off")
        return nearest_chunks(conn, index, vector, filters, limit)


@dataclass
class Timing:
    """One latency row: per-call seconds and the mean number of results."""

    label: str
    seconds: list[float]
    hits: float


def time_row(label: str, calls: Sequence[Callable[[], list[Any]]]) -> Timing:
    """Run the calls one after another as one latency row."""
    seconds, results = timed(calls)
    return Timing(label, seconds, float(np.mean([len(r) for r in results])))


def latency_rows(conn: psycopg.Connection[Any], index: KnowledgeIndex, queries: Queries,
                 cases: Sequence[Case], n: int, n_exact: int) -> list[Timing]:
    """Per-query seconds of semantic / keyword / hybrid / exact, per filter case."""
    from projections.knowledge.search import hybrid, keyword, semantic

    picks = queries.cycle(n)
    vec, phrase, phrase_vec = queries.vectors, queries.phrases, queries.phrase_vectors
    rows: list[Timing] = []
    for case in cases:
        name, f = case.label, case.filters
        note(f"latency, {name}")
        rows += [
            time_row(f"semantic, {name}", [partial(semantic, conn, index, vec[i], f, K)
                                           for i in picks]),
            time_row(f"keyword, {name}", [partial(keyword, conn, index, phrase[i], f, K)
                                          for i in picks]),
            time_row(f"hybrid, {name}", [partial(hybrid, conn, index, phrase[i], phrase_vec[i], f, K)
                                         for i in picks]),
            time_row(f"baseline: exact scan in PostgreSQL (semantic's SQL, index scans off), {name}",
                     [partial(exact_in_pg, conn, index, vec[i], f, K * CHUNKS_PER_THING)
                      for i in picks[:n_exact]]),
        ]
    return rows


def keyword_matches(conn: psycopg.Connection[Any], index: KnowledgeIndex, phrases: Sequence[str],
                    ) -> list[int]:
    """How many chunks each keyword phrase matches (keyword() ranks at most KEYWORD_CANDIDATES)."""
    query = sql.SQL("SELECT count(*) FROM {} WHERE tsv @@ websearch_to_tsquery('english', %s)").format(
        index.chunks)
    return [int(row[0]) if (row := conn.execute(query, (p,)).fetchone()) else 0 for p in phrases]


def embed_latency(model: Any, texts: Sequence[str]) -> list[float]:
    """Seconds to embed one query text at a time with the local model."""
    return timed([partial(model.embed, [t]) for t in texts])[0]


# ---- report ---------------------------------------------------------------------------------


def parse_builds(text: str) -> list[tuple[int, int]]:
    """'16:64,32:128' -> [(16, 64), (32, 128)]."""
    return [(int(m), int(ef)) for m, ef in (part.split(":") for part in text.split(",") if part)]


def verdict(recall_value: float, p99: float) -> str:
    """MET / NOT MET against the targets."""
    ok = recall_value >= TARGET_RECALL and p99 < TARGET_P99_MS
    return "MET" if ok else "NOT MET"


def build_label(m: int, efc: int, product: tuple[int, int]) -> str:
    """How the tables name a build; indexes.py's is marked."""
    return f"m={m}, ef_construction={efc}" + (" (indexes.py)" if (m, efc) == product else "")


def print_latencies(rows: Sequence[Timing], embed_s: list[float]) -> None:
    """The latency table, with each baseline's ratio to the semantic row of the same filter."""
    semantic_p50 = {r.label.split(", ", 1)[1]: pcts(r.seconds)[0]
                    for r in rows if r.label.startswith("semantic")}
    table = []
    for r in rows:
        ratio = "-"
        if r.label.startswith("baseline"):
            ratio = fmt_ratio(pcts(r.seconds)[0] / semantic_p50[r.label.rsplit(", ", 1)[1]])
        table.append((r.label, *lat_cells(r.seconds), f"{r.hits:.1f}", ratio))
    table.append(("query embedding, local model, 1 text (not in the rows above)", *lat_cells(embed_s),
                  "-", "-"))
    print_table("Search latency in ms (the functions GET /v1/search runs; query embedding excluded)",
                ("query", "n", "p50", "p95", "p99", "max", "mean results", "exact p50 / semantic p50"), table)


def main(argv: list[str] | None = None) -> None:
    """Parse flags, generate, load, build, measure, print the report."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--vectors", type=int, default=100_000, help="stored vectors / chunks (default 100000)")
    p.add_argument("--real", type=int, default=2_000, help="sentences embedded with the real model (2000)")
    p.add_argument("--sigma", type=float, default=0.03,
                   help="gaussian noise per dimension added to a real embedding (default 0.03)")
    p.add_argument("--queries", type=int, default=200, help="queries for recall (default 200)")
    p.add_argument("--latency-queries", type=int, default=500, help="queries per latency row (500)")
    p.add_argument("--exact-queries", type=int, default=50, help="queries per exact-scan baseline row (50)")
    p.add_argument("--ef-search", default=",".join(str(x) for x in sorted({40, 100, EF_SEARCH, 400})),
                   help=f"hnsw.ef_search values for recall rows; the API's ({EF_SEARCH}) is always added")
    p.add_argument("--builds", default="",
                   help="other HNSW builds m:ef_construction, comma separated, measured for recall before"
                        " indexes.py's own (which is always measured, last, and serves the latency rows)")
    args = p.parse_args(argv)
    extra_builds = parse_builds(args.builds)
    ef_values = sorted({int(x) for x in args.ef_search.split(",") if x} | {EF_SEARCH})

    from infra.migrations import migrate
    from projections.knowledge.indexes import create_index
    from providers.local_embeddings import LocalMiniLM

    model = LocalMiniLM()
    with fresh_database("search") as bdb:
        print_header("bench.search — knowledge search at N vectors", bdb, vectors=args.vectors,
                     real=args.real, sigma=args.sigma, queries=args.queries,
                     latency_queries=args.latency_queries, exact_queries=args.exact_queries,
                     builds=args.builds or "indexes.py's only", ef_search=args.ef_search,
                     api_ef_search=EF_SEARCH, exact_below=EXACT_BELOW, keyword_candidates=KEYWORD_CANDIDATES)
        migrate(bdb.info)
        note(f"embedding {args.real:,} sentences and {args.queries:,} queries with the local model")
        t0 = time.perf_counter()
        sentences = make_sentences(min(args.real, args.vectors), seed=1)
        real = model.embed([s.text for s in sentences])
        embed_s = time.perf_counter() - t0
        q_sentences = make_sentences(args.queries, seed=2, exclude={s.text for s in sentences})
        rng = random.Random(3)
        phrases = [keyword_query(s, rng) for s in q_sentences]
        queries = Queries([s.text for s in q_sentences], model.embed([s.text for s in q_sentences]),
                          phrases, model.embed(phrases))
        corpus = make_corpus(real, sentences, args.vectors, args.sigma, seed=4)
        with psycopg.connect(bdb.info.conninfo, autocommit=True) as conn:
            version = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
            index = create_index(conn, model.spec, model.dimension)
            definitions = secondary_indexes(conn, index)
            product = hnsw_options(conn, index)
            note(f"loading {args.vectors:,} rows with COPY")
            load_s = load(conn, index, corpus, definitions)
            note("re-creating the full-text and documents' indexes")
            rebuilt = recreate(conn, definitions, skip=hnsw_name(index))
            report_data(args, corpus, real, embed_s, load_s, rebuilt, version[0] if version else "?")
            builds = [b for b in dict.fromkeys(extra_builds) if b != product] + [product]
            run_builds(conn, index, corpus, queries, builds, product, definitions, ef_values, args, model)


def report_data(args: argparse.Namespace, corpus: Corpus, real: Matrix, embed_s: float, load_s: float,
                rebuilt: dict[str, float], version: str) -> None:
    """What the vectors are and how long loading took."""
    sample = corpus.vectors[:500]
    sims = sample @ corpus.vectors.T
    sims[np.arange(len(sample)), np.arange(len(sample))] = -1.0
    nn = np.sort(np.partition(sims, -K, axis=1)[:, -K:], axis=1)
    real_sims = real @ real.T
    np.fill_diagonal(real_sims, -1.0)
    print(f"\n- pgvector {version}; vectors are SYNTHETIC but clustered like text: {len(real):,} generated"
          f" sentences embedded with the real local model ({embed_s:.1f}s), then {len(corpus.ids):,}"
          f" normalised (real_i + N(0, {args.sigma}^2) per dimension); each chunk's text is its source"
          " sentence")
    print("- similarity structure: real sentences' nearest other sentence cos"
          f" {np.mean(real_sims.max(1)):.3f}"
          f" (mean); stored vectors' 1st / 10th nearest neighbour cos {np.mean(nn[:, -1]):.3f} /"
          f" {np.mean(nn[:, 0]):.3f} (mean over 500)")
    builds = ", ".join(f"{name.split('_', 2)[2]} {sec:.1f}s" for name, sec in rebuilt.items())
    print(f"- loaded {len(corpus.ids):,} documents + chunks with COPY (secondary indexes dropped) in"
          f" {load_s:.1f}s ({len(corpus.ids) / load_s:,.0f} rows/s); then re-created from their recorded"
          f" definitions: {builds}", flush=True)


def measure_build(conn: psycopg.Connection[Any], index: KnowledgeIndex, corpus: Corpus, queries: Queries,
                  build: tuple[int, int], label: str, definition: str | None, ef_values: Sequence[int],
                  cases: Sequence[Case]) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    """Build the HNSW index (indexes.py's `definition`, or m / ef_construction); its (build row,
    recall rows)."""
    from projections.knowledge.search import semantic

    note(f"building HNSW {label}")
    seconds = build_hnsw(conn, index, *build, definition)
    size = relation_mb(conn, hnsw_name(index))
    timed([partial(semantic, conn, index, v, Filters(), K) for v in queries.vectors[:50]])  # warm-up
    rows = recall_rows(conn, index, corpus, queries, ef_values, label)
    rows += extra_recall_rows(conn, index, corpus, queries, cases, label)
    return (label, f"{seconds:.1f}", f"{size:,.0f}"), rows


def plan_checks(conn: psycopg.Connection[Any], index: KnowledgeIndex, corpus: Corpus, queries: Queries,
                cases: Sequence[Case], definitions: dict[str, str]) -> str:
    """The indexes match indexes.py's; which path and plan each filter gets; the exact baseline's
    recall against numpy (should be 1); how many chunks the keyword phrases match."""
    v = queries.vectors[0]
    same = secondary_indexes(conn, index) == definitions
    paths = "; ".join(
        f"{c.label}: HNSW in plan {uses_hnsw(nearest_plan(conn, index, v, c.filters), index)}" for c in cases)
    baseline = any(uses_hnsw(nearest_plan(conn, index, v, c.filters, index_off=True), index) for c in cases)
    n = min(20, len(queries.texts))
    truth = exact_top(corpus, queries.vectors[:n])
    agreement = recall([exact_in_pg(conn, index, q, Filters(), K) for q in queries.vectors[:n]], truth)
    matches = sorted(keyword_matches(conn, index, queries.phrases))
    capped = sum(m > KEYWORD_CANDIDATES for m in matches) / len(matches)
    return (f"- indexes during the measurements are those create_index made ({len(definitions)} secondary"
            f" + 2 primary keys, same names and definitions): {same}\n"
            f"- nearest_chunks' path and plan (EXPLAIN of its SQL): {paths}; HNSW in any exact-baseline"
            f" plan (enable_indexscan=off): {baseline}\n"
            f"- exact baseline in PostgreSQL vs numpy ground truth: recall@10 {agreement:.3f} ({n} queries)\n"
            f"- keyword phrases: chunks matched per phrase p50 {int(percentile(matches, 50)):,}, max"
            f" {matches[-1]:,}; {capped:.0%} match more than KEYWORD_CANDIDATES ({KEYWORD_CANDIDATES:,});"
            " for those keyword() ranks only the first KEYWORD_CANDIDATES matches the scan finds")


def run_builds(conn: psycopg.Connection[Any], index: KnowledgeIndex, corpus: Corpus, queries: Queries,
               builds: Sequence[tuple[int, int]], product: tuple[int, int], definitions: dict[str, str],
               ef_values: Sequence[int], args: argparse.Namespace, model: Any) -> None:
    """Each HNSW build with its recall rows; indexes.py's build is last (and listed first): it stays
    for the latency rows."""
    cases = make_cases(conn, index, corpus)
    build_table: list[tuple[str, ...]] = []
    recall_table: list[tuple[str, ...]] = []
    for build in builds:
        definition = definitions[hnsw_name(index)] if build == product else None
        build_row, rows = measure_build(conn, index, corpus, queries, build, build_label(*build, product),
                                        definition, ef_values, cases)
        build_table.insert(0, build_row)
        recall_table[:0] = rows
    checks = plan_checks(conn, index, corpus, queries, cases, definitions)
    latencies = latency_rows(conn, index, queries, cases, args.latency_queries, args.exact_queries)
    embed_s = embed_latency(model, queries.texts)
    print_table("HNSW builds (maintenance_work_mem=1GB, max_parallel_maintenance_workers=2)",
                ("build", "seconds", "index MB"), build_table)
    print_table(f"recall@{K} against exact numpy cosine ({len(queries.texts)} queries), latency in ms",
                ("query", "build", "recall@10", "n", "p50", "p95", "p99", "max"), recall_table)
    print(checks)
    print_latencies(latencies, embed_s)
    print_targets(recall_table, latencies, build_label(*product, product), cases)
    print(f"\n- load average after the run: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def print_targets(recall_table: Sequence[tuple[str, ...]], latencies: Sequence[Timing], build: str,
                  cases: Sequence[Case]) -> None:
    """The measured figures beside the targets, at the API's settings (indexes.py's build, ef_search
    EF_SEARCH, exact below EXACT_BELOW documents)."""
    ours = [r for r in recall_table if r[1] == build]
    recalls = {"no filter": float(next(r[2] for r in ours
                                       if r[0] == f"nearest_chunks, ef_search={EF_SEARCH} (API default)"))}
    recalls |= {c.label: float(next(r[2] for r in ours if r[0] == f"nearest_chunks, {c.label}"))
                for c in cases if c.filters.narrowing}
    p99 = {r.label: pcts(r.seconds)[2] for r in latencies if not r.label.startswith("baseline")}
    worst = max(p99.values())
    modes = ("semantic", "keyword", "hybrid")
    per_case = "; ".join(f"{c.label}: " + " / ".join(fmt_ms(p99[f"{mode}, {c.label}"]) for mode in modes)
                         for c in cases)
    print(f"Targets: search p99 < {TARGET_P99_MS:.0f} ms with recall@10 >= {TARGET_RECALL}."
          f" Measured ({build}, ef_search {EF_SEARCH}, exact below {EXACT_BELOW:,} documents): recall@10 "
          + "; ".join(f"{label} {value:.3f}" for label, value in recalls.items())
          + f". p99 semantic / keyword / hybrid in ms: {per_case}. Worst p99 {fmt_ms(worst)} ms"
          f" -> {verdict(min(recalls.values()), worst)}.")


if __name__ == "__main__":
    main()
