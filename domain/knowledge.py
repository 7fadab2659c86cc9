"""The knowledge dimension's text rules: which properties of a thing are searchable text, how a
thing becomes one document, and how a long document is split into chunks for embedding.

Pure functions: the vector projection calls them; nothing here knows about models or storage.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

DEFAULT_TEXT_PROPERTIES: tuple[str, ...] = (
    "title", "headline", "summary", "description", "bio", "content", "body", "text", "transcript",
    "question", "answer", "instructions", "niche", "expertise",
)
"""Properties embedded for every thing type unless the type has its own list."""

TYPE_TEXT_PROPERTIES: dict[str, tuple[str, ...]] = {
    "creator": ("bio", "description", "niche", "expertise"),
    "ai_clone": ("description", "personality", "instructions", "bio"),
    "knowledge_item": ("title", "content", "text", "summary", "description"),
    "blog_post": ("title", "summary", "excerpt", "content", "body"),
    "course": ("description", "summary", "syllabus", "content"),
    "lesson": ("description", "content", "transcript"),
    "video": ("description", "transcript"),
    "podcast": ("description", "transcript"),
}
"""Per-type overrides, in the order the text is assembled."""


@dataclass(frozen=True)
class TextFields:
    """Which string properties make up a thing's searchable text, per type."""

    default: tuple[str, ...] = DEFAULT_TEXT_PROPERTIES
    by_type: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: dict(TYPE_TEXT_PROPERTIES))

    def for_type(self, thing_type: str) -> tuple[str, ...]:
        """The property names embedded for `thing_type`, in order."""
        return self.by_type.get(thing_type, self.default)

    @classmethod
    def parse(cls, spec: str) -> TextFields:
        """From `type=prop,prop;type=prop` (`*` sets the default), e.g. `creator=bio;*=description`."""
        default = DEFAULT_TEXT_PROPERTIES
        by_type = dict(TYPE_TEXT_PROPERTIES)
        for part in filter(None, (p.strip() for p in spec.split(";"))):
            thing_type, sep, props = part.partition("=")
            names = tuple(p.strip() for p in props.split(",") if p.strip())
            if not sep or not thing_type.strip() or not names:
                raise ValueError(f"bad text-fields entry {part!r}: expected type=prop[,prop...]")
            if thing_type.strip() == "*":
                default = names
            else:
                by_type[thing_type.strip()] = names
        return cls(default, by_type)


def string_properties(properties: Mapping[str, Any]) -> dict[str, str]:
    """The non-blank string values of a properties object (the only ones that can be text)."""
    return {k: v for k, v in properties.items() if isinstance(v, str) and v.strip()}


def document_text(name: str, thing_type: str, fields: Mapping[str, str], text_fields: TextFields) -> str:
    """A thing as one text: its name, then its text properties in the configured order."""
    parts = [name.strip()]
    parts += [fields[key].strip() for key in text_fields.for_type(thing_type) if fields.get(key)]
    return "\n\n".join(parts)


def text_hash(text: str) -> str:
    """A short stable digest of a document's text (re-embed only when it changes)."""
    return hashlib.sha256(text.encode()).hexdigest()[:32]


_WORD = re.compile(r"\S+")


def chunk_text(name: str, text: str, max_words: int = 120, overlap: int = 20) -> list[str]:
    """Split `text` into overlapping windows of at most `max_words` words.

    Every chunk after the first is prefixed with the thing's name, so each chunk carries its
    context on its own (a small model's window is 256 tokens: about 190 English words).
    """
    if max_words < 1 or not 0 <= overlap < max_words:
        raise ValueError("need max_words >= 1 and 0 <= overlap < max_words")
    words = _WORD.findall(text)
    if len(words) <= max_words:
        return [" ".join(words)]
    step = max_words - overlap
    chunks = []
    for start in range(0, len(words) - overlap, step):
        window = " ".join(words[start:start + max_words])
        chunks.append(window if start == 0 else f"{name.strip()}: {window}")
    return chunks
