"""Where every read model stands: log head, projection positions and lag, partitions, parked events."""

from __future__ import annotations

import logging
from typing import Any

from api.runtime import Runtime
from projections.queries import projection_status, rebuild_progress

log = logging.getLogger(__name__)


def collect_status(rt: Runtime) -> dict[str, Any]:
    """Status in both modes. Distributed mode adds per-partition watermarks and consumer lag."""
    head = rt.head()
    settings = rt.settings
    with rt.reads.connection() as conn:
        checkpoints = projection_status(conn, head)
        parked = conn.execute("SELECT count(*) FROM projection_errors WHERE status = 'open'").fetchone()
        rebuilds = rebuild_progress(conn)
        marks = conn.execute(
            "SELECT partition, position FROM stream_watermarks WHERE topic = %s ORDER BY 1",
            (settings.kafka_topic,),
        ).fetchall()
    projected = rt.projected()
    status: dict[str, Any] = {
        "mode": "distributed" if settings.distributed else "embedded",
        "head": head,
        "projected": projected,
        "lag": max(head - projected, 0),
        "parked_events": int(parked[0]) if parked else 0,
        "items": checkpoints,
        "rebuilds": rebuilds,
    }
    if rt.knowledge is not None or settings.distributed:
        knowledge = rt.knowledge_projected()
        status["knowledge"] = {"projected": knowledge, "lag": max(head - knowledge, 0)}
    if settings.distributed:
        status["partitions"] = _partitions(rt, dict(marks))
    return status | saga_status(rt)


def saga_status(rt: Runtime) -> dict[str, Any]:
    """Whether this process leads the sagas and how many tokens' contracts its chain lacked when
    it took the lead (empty where no saga runner runs)."""
    if rt.sagas is None:
        return {}
    return {"sagas": {"leading": rt.sagas.leading, "missing_contracts": len(rt.missing_contracts)}}


def _partitions(rt: Runtime, marks: dict[int, int]) -> list[dict[str, Any]]:
    from streams.lag import consumer_lag

    settings = rt.settings
    assert settings.kafka_bootstrap is not None
    try:
        lag: dict[int, int] | None = consumer_lag(
            settings.kafka_bootstrap, settings.kafka_topic, settings.faust_app_id,
            settings.kafka_partitions,
        )
    except Exception as error:  # the broker may be down: report watermarks without lag
        log.warning("consumer lag unavailable: %s", error)
        lag = None
    return [
        {"partition": p, "watermark": marks.get(p, 0),
         "consumer_lag": None if lag is None else lag.get(p)}
        for p in range(settings.kafka_partitions)
    ]
