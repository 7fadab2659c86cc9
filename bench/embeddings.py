"""Embedding throughput of the local model (all-MiniLM-L6-v2, int8 ONNX on onnxruntime's CPU
provider): in-process at batch sizes 1 and 32, and through the OpenAI-compatible endpoint over
real HTTP (`OpenAIEmbedder` → uvicorn in a thread of this process → the same model), for short
texts (~15 words) and chunk-sized texts (~120 words).

    .venv/bin/python -m bench.embeddings [--texts 256] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import time
from collections.abc import Sequence
from typing import Any

import onnxruntime

from api.embeddings_server import create_embeddings_app
from bench.common import _cpu_model, fmt_ms, fmt_rate, median_run, note, print_table
from providers.embeddings import Embedder
from providers.local_embeddings import MAX_TOKENS, MODEL_ID, LocalMiniLM
from providers.openai_embeddings import OpenAIEmbedder
from tests.support.live_server import LiveServer

WORDS = ["course", "lesson", "creator", "video", "podcast", "membership", "community", "token", "payment",
         "fitness", "yoga", "finance", "music", "cooking", "design", "beginner", "advanced", "weekly",
         "live", "session", "notes", "practice", "breathing", "strength", "budget", "savings", "recipe",
         "kitchen", "studio", "guitar", "rhythm", "layout", "colour", "students", "members", "progress",
         "schedule", "morning", "evening", "guide", "tips", "review", "chapter"]


def make_texts(count: int, words: int, seed: int) -> list[str]:
    """`count` different texts of about `words` words (±20%)."""
    rng = random.Random(seed)
    return [" ".join(rng.choices(WORDS, k=rng.randint(words * 4 // 5, words * 6 // 5)))
            for _ in range(count)]


def run(embedder: Embedder, texts: Sequence[str], batch: int) -> dict[str, Any]:
    """Embed `texts` in consecutive batches of `batch`; wall time and count."""
    t0 = time.perf_counter()
    for start in range(0, len(texts), batch):
        embedder.embed(texts[start:start + batch])
    return {"n": len(texts), "wall": time.perf_counter() - t0, "batches": -(-len(texts) // batch)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--texts", type=int, default=256, help="texts per run")
    parser.add_argument("--repeats", type=int, default=3, help="runs per row (the median is shown)")
    args = parser.parse_args()
    print("## bench/embeddings: the local embedding model\n")
    print(f"- machine: {os.cpu_count()} CPU cores ({platform.machine()}, {_cpu_model()}),"
          f" Python {platform.python_version()}, onnxruntime {onnxruntime.__version__}")
    print(f"- load average before the run: {load_average()} (other work on the machine skews figures)")
    print(f"- model: {MODEL_ID} (384 dimensions, truncation at {MAX_TOKENS} tokens)")
    print(f"- parameters: texts={args.texts}, repeats={args.repeats} (median run shown, range = min..max)",
          flush=True)
    local = LocalMiniLM()
    local.load()
    corpora = {"short (~15 words)": make_texts(args.texts, 15, 1),
               "chunk (~120 words)": make_texts(args.texts, 120, 2)}
    rows = []
    with LiveServer(create_embeddings_app(local)) as live:
        remote = OpenAIEmbedder(MODEL_ID, base_url=f"{live.url}/v1")
        paths: list[tuple[str, Embedder, int]] = [("in-process", local, 1), ("in-process", local, 32),
                                                  ("HTTP, OpenAI-compatible endpoint", remote, 32)]
        for label, texts in corpora.items():
            tokens = local.count_tokens(texts) / len(texts)
            for path, embedder, batch in paths:
                note(f"{label}: {path}, batch {batch}")
                run(embedder, texts[:batch * 2], batch)  # warm-up
                chosen = median_run([run(embedder, texts, batch) for _ in range(args.repeats)])
                rows.append((label, f"{tokens:.0f}", path, batch, fmt_rate(chosen["n"] / chosen["wall"]),
                             chosen["range"], fmt_ms(chosen["wall"] / chosen["batches"] * 1000)))
    print_table("embeddings per second",
                ["texts", "tokens/text", "path", "batch", "embeddings/s", "range", "ms/batch"], rows)
    print(f"- load average after the run: {load_average()}")


def load_average() -> str:
    """The 1, 5 and 15 minute load averages."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


if __name__ == "__main__":
    main()
