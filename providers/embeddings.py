"""What an embedder is: texts in, unit-length vectors out (one interface, several providers).

`EmbedderSpec` identifies the vector space an index was built with: two specs that differ give
vectors that must never be compared, so every knowledge index records the spec it was built with.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

Vectors = npt.NDArray[np.float32]
"""A (texts x dimension) float32 matrix, one unit-length row per input text."""


class EmbeddingError(Exception):
    """Embedding failed (after the provider's retries)."""


class EmbedderMisconfigured(EmbeddingError):
    """The embedder cannot work as configured (missing key, unknown model, bad model file)."""


@dataclass(frozen=True)
class EmbedderSpec:
    """Which provider and model produce the vectors (no secrets: this is stored in the database)."""

    provider: str
    model: str
    base_url: str | None = None
    dimensions: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (stored with each knowledge index)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> EmbedderSpec:
        """Inverse of `to_dict`."""
        return cls(provider=str(raw["provider"]), model=str(raw["model"]),
                   base_url=raw.get("base_url"), dimensions=raw.get("dimensions"))


class Embedder(Protocol):
    """Turns texts into unit-length vectors of a fixed dimension."""

    @property
    def spec(self) -> EmbedderSpec:
        """The provider and model (identifies the vector space)."""
        ...

    @property
    def dimension(self) -> int:
        """Length of every vector this embedder returns."""
        ...

    def embed(self, texts: Sequence[str]) -> Vectors:
        """One unit-length vector per text, in order. Raises EmbeddingError."""
        ...
