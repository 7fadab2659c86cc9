"""A thing as the vector projection sees it, and how thing events change it (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from domain.knowledge import TextFields, document_text, string_properties, text_hash
from eventlog.envelope import Envelope

THING_EVENTS = frozenset({
    "thing.created", "thing.updated", "thing.status_changed", "thing.tagged", "thing.untagged",
    "thing.deleted", "thing.restored",
})


@dataclass(frozen=True)
class Document:
    """One thing's searchable state. `embedded_hash` is the text whose chunks are stored."""

    thing_id: str
    org_id: str
    type: str
    name: str
    status: str
    tags: tuple[str, ...]
    deleted: bool
    fields: dict[str, str] = field(hash=False)
    version: int
    position: int
    embedded_hash: str | None = None
    error: str | None = None

    def text(self, text_fields: TextFields) -> str:
        """The document's text: name plus its type's text properties."""
        return document_text(self.name, self.type, self.fields, text_fields)

    def text_hash(self, text_fields: TextFields) -> str:
        """Digest of `text` (what was embedded is compared against it)."""
        return text_hash(self.text(text_fields))

    def needs_embedding(self, text_fields: TextFields) -> bool:
        """True when the stored chunks do not reflect the current text."""
        return not self.deleted and self.embedded_hash != self.text_hash(text_fields)


def fold(document: Document | None, e: Envelope) -> Document | None:
    """The document after event `e` (ignored when the document already reflects it)."""
    if document is not None and e.version <= document.version:
        return document
    d = e.data
    if e.type == "thing.created":
        return Document(
            thing_id=e.stream_id, org_id=e.org_id, type=d["type"], name=d["name"], status=d["status"],
            tags=tuple(d["tags"]), deleted=False, fields=string_properties(d["properties"]),
            version=e.version, position=e.position,
        )
    if document is None:  # an event for a thing whose creation this index never saw
        return None
    stamp: dict[str, Any] = {"version": e.version, "position": e.position}
    if e.type == "thing.updated":
        return replace(document, name=d["name"] or document.name,
                       fields=_patched(document.fields, d["properties"]), **stamp)
    if e.type == "thing.status_changed":
        return replace(document, status=d["status"], **stamp)
    if e.type == "thing.tagged":
        return replace(document, tags=document.tags + tuple(t for t in d["tags"] if t not in document.tags),
                       **stamp)
    if e.type == "thing.untagged":
        return replace(document, tags=tuple(t for t in document.tags if t not in d["tags"]), **stamp)
    if e.type == "thing.deleted":
        return replace(document, deleted=True, embedded_hash=None, **stamp)
    if e.type == "thing.restored":
        return replace(document, deleted=False, **stamp)
    return replace(document, **stamp)


def _patched(fields: dict[str, str], patch: dict[str, Any]) -> dict[str, str]:
    merged = {k: v for k, v in fields.items() if k not in patch}
    merged.update(string_properties({k: v for k, v in patch.items() if v is not None}))
    return merged
