"""Query-string filters, checked against the ontology and normalised (a legacy alias filters by
its consolidated name): an unknown value is refused (422, the parameter named) instead of
silently matching nothing. The OpenAPI document lists each filter's values."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Literal

from pydantic import AfterValidator

from commands.fields import (
    AccountStatus,
    ConnectionTypeName,
    EventTypeName,
    Role,
    Tag,
    ThingStatus,
    ThingTypeName,
    one_of,
)
from domain import ontology
from domain.catalog import EVENT_CLASSES
from domain.permissions import ACCOUNT_STATUSES
from domain.token_purchase import SAGA_STATUSES
from domain.workflows import WORKFLOW_STATUSES
from projections.queries import PARKED_STATUSES
from projections.registry import PROJECTIONS


def _member_of(allowed: frozenset[str], what: str) -> Callable[[str], str]:
    def check(value: str) -> str:
        if value not in allowed:
            raise ValueError(f"unknown {what} {value!r}")
        return value

    return check


def _event_type(name: str) -> str:
    return ontology.normalize_event_type(name)[0]


def _tag(text: str) -> str:
    return ontology.format_tag(*ontology.parse_tag(text, field="tag"))


ThingTypeFilter = Annotated[ThingTypeName, AfterValidator(ontology.normalize_thing_type)]
ConnectionTypeFilter = Annotated[ConnectionTypeName, AfterValidator(ontology.normalize_connection_type)]
EventTypeFilter = Annotated[EventTypeName, AfterValidator(_event_type)]
ThingStatusFilter = Annotated[ThingStatus, AfterValidator(ontology.validate_status)]
RoleFilter = Annotated[Role, AfterValidator(ontology.validate_role)]
AccountStatusFilter = Annotated[AccountStatus, AfterValidator(_member_of(ACCOUNT_STATUSES, "status"))]
TagFilter = Annotated[Tag, AfterValidator(_tag)]
TagCategoryFilter = Annotated[str, one_of(ontology.TAG_CATEGORIES, "a tag category"),
                              AfterValidator(_member_of(ontology.TAG_CATEGORIES, "category"))]
Include = Literal["connections"]
LOG_EVENT_TYPES = frozenset(EVENT_CLASSES)
LogEventTypeFilter = Annotated[str, one_of(LOG_EVENT_TYPES, "an event type of the log"),
                              AfterValidator(_member_of(LOG_EVENT_TYPES, "event type"))]
PROJECTION_NAMES = frozenset(PROJECTIONS)
ProjectionFilter = Annotated[str, one_of(PROJECTION_NAMES, "a projection"),
                             AfterValidator(_member_of(PROJECTION_NAMES, "projection"))]
PARKED_FILTER = frozenset({*PARKED_STATUSES, "all"})
ParkedStatusFilter = Annotated[str, one_of(PARKED_FILTER, "a parked event's status, or all"),
                               AfterValidator(_member_of(PARKED_FILTER, "status"))]
PROCESS_STATUSES = SAGA_STATUSES | WORKFLOW_STATUSES
SagaStatusFilter = Annotated[str, one_of(PROCESS_STATUSES, "a saga's or workflow's status"),
                             AfterValidator(_member_of(PROCESS_STATUSES, "status"))]
