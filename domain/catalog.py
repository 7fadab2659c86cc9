"""Every public event type of the domain, by its stable `TYPE` name."""

from __future__ import annotations

from typing import Any

from domain.activity import Activity
from domain.agents import AgentExecution
from domain.api_keys import ApiKey
from domain.base import public_event_types
from domain.connections import Connection
from domain.features import FeatureCatalog
from domain.invitations import Invitation, Referral, ReferralAccount
from domain.luma_calendars import LumaCalendar
from domain.organizations import Organization, Person
from domain.schedules import Schedule
from domain.things import Thing
from domain.token_deployment import TokenDeployment
from domain.token_purchase import TokenPurchase
from domain.usernames import UsernameClaim
from domain.workflows import WorkflowInstance

AGGREGATES = (Organization, Person, Thing, Connection, Activity, TokenPurchase, ApiKey, UsernameClaim,
              TokenDeployment, WorkflowInstance, Schedule, LumaCalendar, FeatureCatalog, Invitation,
              Referral, ReferralAccount, AgentExecution)
EVENT_CLASSES: dict[str, type[Any]] = public_event_types(*AGGREGATES)
