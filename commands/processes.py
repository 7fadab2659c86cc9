"""Advancing long-running processes (token purchase sagas, workflow instances): only the
platform's own drivers and operators do it, and always under optimistic concurrency."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from commands.handlers import HANDLERS, Context, Reply, granted
from commands.unit_of_work import Scope
from domain.base import OneAggregate
from domain.errors import VersionConflict
from domain.token_purchase import TokenPurchase
from domain.workflows import WorkflowInstance

PROCESS_KINDS: tuple[type[OneAggregate], ...] = (TokenPurchase, WorkflowInstance)
"""The aggregates that are processes run by a driver."""

Decision = Callable[[Any, Scope, Context], None]
"""What a driver (or operator) decided, applied to the process as loaded at the version it acted
on, with the scope to change other aggregates in the same transaction."""


@dataclass(frozen=True)
class AdvanceProcess:
    """Internal (driver or operator → process): apply a decision if the process is still at
    `version`."""

    id: UUID
    version: int
    decide: Decision


def operator_action(process_id: UUID, version: int, action: Callable[[Any], None]) -> AdvanceProcess:
    """An operator's retry, skip, cancel or resolution, as the platform's own advance of the
    process at `version` (the operator is named inside `action`, e.g. `lambda s: s.resume(who)`)."""
    return AdvanceProcess(process_id, version, lambda process, _, __: action(process))


def advance_process(cmd: AdvanceProcess, ctx: Context, scope: Scope) -> Reply:
    """Apply the decision under optimistic concurrency (a stale driver loses)."""
    ctx = granted(AdvanceProcess, ctx)
    process = scope.get(cmd.id, OneAggregate)
    if not isinstance(process, PROCESS_KINDS):
        raise VersionConflict(f"stream {cmd.id} is not a process", "id")
    if process.version != cmd.version:
        raise VersionConflict(f"the process moved on to version {process.version}", "version")
    cmd.decide(process, scope, ctx)
    return Reply(process.id)


HANDLERS[AdvanceProcess] = advance_process
