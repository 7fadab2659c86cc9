"""The knowledge text rules and the vector projection's pure parts: chunking, text fields, folding
thing events into documents, reciprocal rank fusion."""

from __future__ import annotations

import pytest

from domain.knowledge import TextFields, chunk_text, document_text, string_properties
from eventlog.envelope import Envelope
from projections.knowledge.documents import Document, fold
from projections.knowledge.search import RRF_K, Filters, fuse

THING = "5f0e4a53-4f8e-4a59-9b59-8a4f3f0e8d11"


def envelope(version: int, type_: str, **data: object) -> Envelope:
    return Envelope(position=100 + version, stream_id=THING, version=version, type=type_,
                    schema_version=1, occurred_at="2026-01-01T00:00:00+00:00", org_id="org",
                    actor_id="actor", data=dict(data))


def created(**overrides: object) -> Envelope:
    data: dict[str, object] = {"type": "course", "name": "Yoga", "status": "draft", "tags": ["topic:yoga"],
                               "properties": {"description": "Gentle lessons", "price": 10}}
    return envelope(1, "thing.created", **{**data, **overrides})


def test_short_text_is_one_chunk_and_long_text_overlapping_windows() -> None:
    assert chunk_text("Yoga", "one two three") == ["one two three"]
    words = [f"w{i}" for i in range(250)]
    chunks = chunk_text("Yoga", " ".join(words), max_words=100, overlap=10)
    assert len(chunks) == 3
    assert chunks[0].split() == words[:100]
    assert chunks[1] == "Yoga: " + " ".join(words[90:190])
    assert chunks[2].endswith("w249")
    covered = {w for c in chunks for w in c.split()}
    assert set(words) <= covered


def test_chunking_rejects_bad_windows() -> None:
    with pytest.raises(ValueError):
        chunk_text("n", "text", max_words=10, overlap=10)


def test_text_fields_per_type_and_override() -> None:
    fields = TextFields.parse("creator=bio;*=summary,notes")
    assert fields.for_type("creator") == ("bio",)
    assert fields.for_type("video") == ("description", "transcript")  # built-in override kept
    assert fields.for_type("token") == ("summary", "notes")
    with pytest.raises(ValueError, match="bad text-fields entry"):
        TextFields.parse("creator")
    text = document_text("Ann", "creator", {"bio": "Runs marathons", "other": "x"}, fields)
    assert text == "Ann\n\nRuns marathons"


def test_only_non_blank_strings_are_text() -> None:
    assert string_properties({"a": "x", "b": 3, "c": " ", "d": ["y"]}) == {"a": "x"}


def test_fold_builds_and_updates_a_document() -> None:
    doc = fold(None, created())
    assert doc is not None and doc.fields == {"description": "Gentle lessons"} and doc.version == 1
    doc = fold(doc, envelope(2, "thing.updated", name=None,
                             properties={"description": None, "content": "Breathing"}))
    assert doc is not None and doc.fields == {"content": "Breathing"} and doc.name == "Yoga"
    doc = fold(doc, envelope(3, "thing.tagged", tags=["level:beginner", "topic:yoga"]))
    doc = fold(doc, envelope(4, "thing.untagged", tags=["topic:yoga"]))
    doc = fold(doc, envelope(5, "thing.status_changed", status="published", previous="draft"))
    assert doc is not None
    assert doc.tags == ("level:beginner",) and doc.status == "published" and doc.version == 5


def test_fold_ignores_events_already_reflected() -> None:
    doc = fold(None, created())
    renamed = fold(doc, envelope(2, "thing.updated", name="Yin yoga", properties={}))
    assert fold(renamed, envelope(2, "thing.updated", name="Other", properties={})) is renamed
    assert fold(renamed, created(name="Again")) is renamed


def test_delete_forgets_the_embedding_so_restore_re_embeds() -> None:
    fields = TextFields()
    doc = fold(None, created())
    assert doc is not None and doc.needs_embedding(fields)
    embedded = Document(**{**doc.__dict__, "embedded_hash": doc.text_hash(fields)})
    assert not embedded.needs_embedding(fields)
    deleted = fold(embedded, envelope(2, "thing.deleted"))
    assert deleted is not None and deleted.deleted and not deleted.needs_embedding(fields)
    restored = fold(deleted, envelope(3, "thing.restored"))
    assert restored is not None and restored.needs_embedding(fields)


def test_events_of_a_thing_never_created_here_are_ignored() -> None:
    assert fold(None, envelope(2, "thing.updated", name="x", properties={})) is None


def test_reciprocal_rank_fusion_rewards_agreement() -> None:
    a, b, c = ({"id": key} for key in "abc")
    fused = fuse([[a, b, c], [c, a]], limit=3)
    assert [h["id"] for h in fused] == ["a", "c", "b"]
    assert fused[0]["score"] == pytest.approx(1 / (RRF_K + 1) + 1 / (RRF_K + 2))
    assert len(fuse([[a, b, c]], limit=2)) == 2


def test_filters_render_only_what_is_given() -> None:
    where, params = Filters(type="course", tag="topic:yoga").where()
    assert params == ["course", "topic:yoga"]
    assert Filters().where()[1] == []
    assert "deleted" in repr(where)
