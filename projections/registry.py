"""All projections, by name."""

from __future__ import annotations

from projections.activity import ACTIVITY
from projections.agents import AGENT_EXECUTIONS
from projections.base import Projection
from projections.connections import CONNECTIONS
from projections.people import API_KEYS, ORGANIZATIONS, PEOPLE
from projections.sagas import SAGAS
from projections.schedules import SCHEDULES
from projections.tags import TAGS
from projections.things import THINGS

PROJECTIONS: dict[str, Projection] = {
    p.name: p for p in (THINGS, TAGS, CONNECTIONS, ACTIVITY, SAGAS, ORGANIZATIONS, PEOPLE, API_KEYS,
                        SCHEDULES, AGENT_EXECUTIONS)
}
