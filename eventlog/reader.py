"""Reading the log: envelopes in position order, in chunks, to its end or following its appends.

One reader serves every consumer of the log (the projection runners, the rebuild, the relay,
replay). The next chunk is read and decoded by a thread while the caller works on the current one,
so decoding overlaps with applying or publishing instead of adding to it.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator, Iterator
from typing import Any

import psycopg
from eventsourcing.persistence import Notification

from eventlog.envelope import Envelope, decode_notification
from eventlog.store import EVENTS_TABLE, EventLog
from infra.database import ConnectionInfo

_END = object()


def read_chunk(event_log: EventLog, after: int, limit: int) -> list[Envelope]:
    """At most `limit` envelopes after position `after`."""
    notifications = event_log.recorder.select_notifications(start=after + 1, limit=limit)
    return [decode_notification(n) for n in notifications]


def read_stream(conn: psycopg.Connection[Any], stream_id: str, from_position: int = 0,
                after_version: int = 0, limit: int | None = None) -> list[Envelope]:
    """One stream's envelopes in order (upcast, as always): from log position `from_position`,
    after stream version `after_version`, at most `limit`."""
    rows = conn.execute(
        f"SELECT notification_id, originator_id, originator_version, topic, state FROM {EVENTS_TABLE}"
        " WHERE originator_id = %s::uuid AND notification_id >= %s AND originator_version > %s"
        " ORDER BY originator_version LIMIT %s",
        (stream_id, from_position, after_version, limit),
    ).fetchall()
    return [decode_notification(Notification(id=row[0], originator_id=row[1], originator_version=row[2],
                                             topic=row[3], state=bytes(row[4]))) for row in rows]


def read_to_end(event_log: EventLog, after: int = 0, chunk_size: int = 2000,
                stop: threading.Event | None = None) -> Generator[list[Envelope]]:
    """Chunks of envelopes after `after` up to the log's current end (or until `stop` is set),
    each read while the caller still works on the one before."""
    stop = stop or threading.Event()
    ready: queue.Queue[Any] = queue.Queue(maxsize=1)
    closed = threading.Event()

    def hand_over(item: object) -> bool:
        while not closed.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        position = after
        try:
            while not stop.is_set():
                chunk = read_chunk(event_log, position, chunk_size)
                if not chunk or not hand_over(chunk):
                    break
                position = chunk[-1].position
            hand_over(_END)
        except BaseException as error:  # handed to the caller, who raises it
            hand_over(error)

    reader = threading.Thread(target=read, name="one-log-reader", daemon=True)
    reader.start()
    try:
        while (item := ready.get()) is not _END:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        closed.set()
        reader.join()


def follow(event_log: EventLog, db: ConnectionInfo, after: int, stop: threading.Event,
           chunk_size: int = 2000, idle_wait: float = 0.25) -> Iterator[list[Envelope]]:
    """Chunks of envelopes after `after`, then of every later append, until `stop` is set.

    When caught up it sleeps on the log's LISTEN/NOTIFY channel (every append notifies), waking
    at least every `idle_wait` seconds to check `stop`. The caller tracks its own position: if it
    fails on a chunk, it drops the iterator and follows again from what it committed."""
    with psycopg.connect(db.conninfo, autocommit=True) as listener:
        listener.execute(f"LISTEN {EVENTS_TABLE}")
        while not stop.is_set():
            for chunk in read_to_end(event_log, after, chunk_size, stop):
                yield chunk
                after = chunk[-1].position
            for _ in listener.notifies(timeout=idle_wait, stop_after=1):
                pass
