"""Every event type the log can hold (the `type` of an envelope), read off the domain's event classes."""

from __future__ import annotations

from types import ModuleType
from typing import Final

from domain import (
    activity,
    api_keys,
    connections,
    organizations,
    things,
    token_deployment,
    token_purchase,
    usernames,
)


def _types_in(namespace: object, module: str) -> set[str]:
    """The `TYPE`s of the classes defined in `module`, nested ones included."""
    found: set[str] = set()
    for value in vars(namespace).values():
        if isinstance(value, type) and value.__module__ == module and value is not namespace:
            kind = getattr(value, "TYPE", None)
            if isinstance(kind, str) and kind:
                found.add(kind)
            found |= _types_in(value, module)
    return found


def _types(*modules: ModuleType) -> frozenset[str]:
    return frozenset(kind for module in modules for kind in _types_in(module, module.__name__))


LOG_EVENT_TYPES: Final[frozenset[str]] = _types(
    activity, api_keys, connections, organizations, things, token_deployment, token_purchase, usernames,
)
