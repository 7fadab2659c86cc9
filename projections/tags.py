"""Tags read model: each organization's tag catalogue with usage counts, and which thing carries
which tag.

`thing_tags` rows are guarded by the thing's stream version; a usage count moves only when a
row actually flips between inactive and active, so replays never double-count. The writer applies
the changes set-based (`projections.tag_changes`).
"""

from __future__ import annotations

from eventlog.envelope import Envelope
from projections.base import Projection, TagChange


def project_tags(e: Envelope) -> list[TagChange]:
    """Envelope → one tag change per tag it attaches or detaches."""
    attached = e.type != "thing.untagged"
    return [TagChange(e.org_id, e.stream_id, tag, attached, e.version, e.occurred_at)
            for tag in e.data["tags"]]


TAGS = Projection(
    name="tags",
    tables=("tags", "thing_tags"),
    handles=frozenset({"thing.created", "thing.tagged", "thing.untagged"}),
    project=project_tags,
)
