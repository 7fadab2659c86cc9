"""The workflow definitions clients can start, by name: the platform's own (ELEVATE)."""

from __future__ import annotations

from domain.elevate import ELEVATE
from domain.workflows import WorkflowDefinition

BUILT_IN: dict[str, WorkflowDefinition] = {ELEVATE.name: ELEVATE}


def built_in_definition(name: str) -> WorkflowDefinition | None:
    """The platform's definition called `name`, if any."""
    return BUILT_IN.get(name)
