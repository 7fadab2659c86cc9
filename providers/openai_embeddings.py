"""The OpenAI embedder: the official `openai` SDK against api.openai.com or any OpenAI-compatible server.

Retries (429, 408/409, 5xx, connection errors and timeouts, with exponential backoff honouring
`Retry-After`) are the SDK's own (`max_retries`). What is left after them maps onto our errors:
a rejected key, an unknown model or a rejected request is `EmbedderMisconfigured` (retrying will not
help); anything else is `EmbeddingError`.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np
import openai

from providers.embeddings import EmbedderMisconfigured, EmbedderSpec, EmbeddingError, Vectors

DEFAULT_MODEL = "text-embedding-3-small"
OPENAI_BASE_URL = "https://api.openai.com/v1"
KNOWN_DIMENSIONS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072,
                    "text-embedding-ada-002": 1536}
BATCH_SIZE = 256
"""Most inputs per request (OpenAI allows 2048, but also caps the tokens of one request)."""
PLACEHOLDER_KEY = "not-needed"
"""Sent to a custom `base_url` when no key is configured (local servers ignore it)."""


class OpenAIEmbedder:
    """Embeddings from OpenAI's `/embeddings` API (or a compatible server at `base_url`).

    `dimensions` is sent only when given (text-embedding-3 models shorten their vectors to it).
    The vector length is `dimensions`, else the model's known length, else measured once with a
    one-text request on first use. The key is never part of `spec`.
    """

    def __init__(self, model: str = DEFAULT_MODEL, *, api_key: str | None = None,
                 base_url: str | None = None, dimensions: int | None = None,
                 batch_size: int = BATCH_SIZE, max_retries: int = 4, timeout: float = 60.0) -> None:
        if not api_key and not base_url:
            raise EmbedderMisconfigured(
                "OPENAI_API_KEY is not set: the openai embedder needs an API key "
                "(or OPENAI_BASE_URL pointing at an OpenAI-compatible server)")
        self._spec = EmbedderSpec(provider="openai", model=model, base_url=base_url, dimensions=dimensions)
        self._where = base_url or OPENAI_BASE_URL
        self._batch_size = batch_size
        self._max_retries = max_retries
        self._client = openai.OpenAI(api_key=api_key or PLACEHOLDER_KEY, base_url=self._where,
                                     max_retries=max_retries, timeout=timeout)
        self._dimension = dimensions or KNOWN_DIMENSIONS.get(model)
        self._probe_lock = threading.Lock()

    @property
    def spec(self) -> EmbedderSpec:
        """provider "openai", the model, the base URL and the requested dimensions."""
        return self._spec

    @property
    def dimension(self) -> int:
        """The vector length (may cost one request the first time, for an unknown model)."""
        if self._dimension is None:
            with self._probe_lock:
                if self._dimension is None:
                    self._dimension = int(self._request(["dimension probe"]).shape[1])
        return int(self._dimension)

    def embed(self, texts: Sequence[str]) -> Vectors:
        """One unit-length float32 row per text, in order, in requests of at most `batch_size` texts."""
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of texts, not a single string")
        dimension = self.dimension
        out = np.empty((len(texts), dimension), dtype=np.float32)
        for start in range(0, len(texts), self._batch_size):
            vectors = self._request(list(texts[start:start + self._batch_size]))
            if vectors.shape[1] != dimension:
                raise EmbedderMisconfigured(
                    f"{self._where} returned {vectors.shape[1]}-dimensional vectors for model "
                    f"{self._spec.model!r}, expected {dimension} (set ONE_EMBEDDING_DIMENSIONS?)")
            out[start:start + len(vectors)] = vectors
        return out

    def _request(self, batch: list[str]) -> Vectors:
        """Embed one batch (one HTTP request plus the SDK's retries); rows L2-normalised."""
        model = self._spec.model
        try:
            response = self._client.embeddings.create(
                input=batch, model=model, encoding_format="float",
                dimensions=self._spec.dimensions if self._spec.dimensions is not None else openai.omit)
        except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
            raise EmbedderMisconfigured(
                f"{self._where} refused the API key: {exc.message}") from exc
        except openai.NotFoundError as exc:
            raise EmbedderMisconfigured(
                f"{self._where} does not know the embedding model {model!r}: {exc.message}") from exc
        except (openai.BadRequestError, openai.UnprocessableEntityError) as exc:
            raise EmbedderMisconfigured(
                f"{self._where} rejected the embedding request for model {model!r}: {exc.message}") from exc
        except openai.OpenAIError as exc:
            raise EmbeddingError(
                f"embedding request to {self._where} failed (retried up to {self._max_retries} times): "
                f"{exc}") from exc
        rows = sorted(response.data, key=lambda item: item.index)
        if len(rows) != len(batch):
            raise EmbeddingError(f"{self._where} returned {len(rows)} embeddings for {len(batch)} texts")
        try:
            vectors: Vectors = np.array([r.embedding for r in rows], dtype=np.float32).reshape(len(rows), -1)
        except ValueError as exc:
            raise EmbeddingError(f"{self._where} returned malformed embeddings: {exc}") from exc
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        normalised: Vectors = vectors / np.maximum(norms, 1e-12)
        return normalised
