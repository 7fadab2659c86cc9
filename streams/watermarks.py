"""Partition watermarks: how far the Faust workers have brought every read model."""

from __future__ import annotations

from typing import Any

import psycopg


def knowledge_watermarks(topic: str) -> str:
    """The key under which the knowledge workers store their partition watermarks."""
    return f"{topic}#knowledge"


def lowest_watermark(conn: psycopg.Connection[Any], topic: str, partitions: int) -> int:
    """The log position up to which all partitions are projected (0 until each has a mark)."""
    row = conn.execute(
        "SELECT count(*), coalesce(min(position), 0) FROM stream_watermarks WHERE topic = %s",
        (topic,),
    ).fetchone()
    if row is None or row[0] < partitions:
        return 0
    return int(row[1])
