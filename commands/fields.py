"""Field types of the commands (and so of the HTTP bodies): what a field accepts is declared once,
so the OpenAPI document states exactly what the server accepts. Names of the ontology are
documented as enums taken from the ontology itself (the domain still checks them, with its own
messages); formats and limits are checked by the types themselves.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from typing import Annotated, Any, Final

from pydantic import AfterValidator, BeforeValidator, Field, StringConstraints, WithJsonSchema

from domain import ontology
from domain.organizations import (
    AUTH_METHODS,
    AVAILABILITIES,
    LEARNING_TRACKS,
    SLUG_PATTERN,
    STATS,
    VISIBILITIES,
)
from domain.permissions import ACCOUNT_STATUSES
from domain.personal_data import RULES

MAX_JSON_DEPTH: Final = 64
"""How deeply a client's JSON object (properties, metadata) may nest."""
STORABLE_JSON: Final = "StorableJson"
"""The name of the (recursive) schema of values the log and read models can store."""
NO_NUL: Final = "^[^\\u0000]*$"


def one_of(names: Iterable[str], what: str) -> WithJsonSchema:
    """Document a string as one of `names` (checked elsewhere)."""
    return WithJsonSchema({"type": "string", "enum": sorted(names), "description": what})


ThingTypeName = Annotated[str, one_of(ontology.ACCEPTED_NAMES["thing"], "a thing type (or legacy alias)")]
ConnectionTypeName = Annotated[str, one_of(ontology.ACCEPTED_NAMES["connection"],
                                            "a connection type (or legacy alias)")]
EventTypeName = Annotated[str, one_of(ontology.ACCEPTED_NAMES["event"], "an event type (or legacy alias)")]
ThingStatus = Annotated[str, one_of(ontology.THING_STATUSES, "a thing's lifecycle status")]
Role = Annotated[str, one_of(ontology.ROLES, "a person's platform role")]
AccountStatus = Annotated[str, one_of(ACCOUNT_STATUSES, "a person's account status")]
AuthMethod = Annotated[str, one_of(AUTH_METHODS, "how a person signs in")]
Tag = Annotated[str, WithJsonSchema({"type": "string", "pattern": ontology.TAG_PATTERN,
                                     "description": "`category:value`"})]
Name = Annotated[str, StringConstraints(max_length=500, pattern=ontology.NOT_BLANK)]
"""A display name: not blank, at most 500 characters."""
KeyName = Annotated[str, StringConstraints(max_length=100, pattern=ontology.NOT_BLANK)]
Visibility = Annotated[str, one_of(VISIBILITIES, "who sees the profile")]
Availability = Annotated[str, one_of(AVAILABILITIES, "open to work?")]
LearningTrack = Annotated[str, one_of(LEARNING_TRACKS, "a learning track")]
Stats = Annotated[dict[str, Annotated[float, Field(strict=True, ge=0)]], WithJsonSchema({
    "type": "object", "additionalProperties": False,
    "properties": {name: {"type": "number", "minimum": 0} for name in sorted(STATS)},
})]


def _not_null(field: dict[str, Any]) -> None:
    """Drop the null alternative of an optional field (null is refused there)."""
    if "anyOf" in field:
        options = [option for option in field.pop("anyOf") if option.get("type") != "null"]
        field.update(options[0])


def document_person_patch(schema: dict[str, Any]) -> None:
    """A person patch: personal rules; name and username change but are never removed; and it
    changes something (a personal field, or a non-empty profile)."""
    document_personal_fields(schema)
    properties = schema["properties"]
    for name in ("name", "username"):
        _not_null(properties[name])
    personal = [name for name in properties if name != "profile"]
    schema["anyOf"] = [*({"required": [name]} for name in personal), {
        "required": ["profile"], "properties": {"profile": {"type": "object", "minProperties": 1}}}]


def document_personal_fields(schema: dict[str, Any]) -> None:
    """Give each personal field of a model's JSON schema its rule (pattern, length)."""
    for name, field in schema.get("properties", {}).items():
        if name not in RULES:
            continue
        rule = RULES[name].json_schema()
        if "anyOf" in field:
            field["anyOf"] = [rule if option.get("type") == "string" else option
                              for option in field["anyOf"]]
        else:
            field.update(rule)
Email = Annotated[str, WithJsonSchema(RULES["email"].json_schema())]
"""An email address (checked, and lowercased, by the personal-data rules)."""
PersonName = Annotated[str, WithJsonSchema(RULES["name"].json_schema())]
"""A person's name (checked by the personal-data rules)."""
Slug = Annotated[str, StringConstraints(pattern=SLUG_PATTERN)]


def at_least_one_of(*names: str) -> dict[str, Any]:
    """A body schema that requires one of `names` with a value that is neither null nor an
    empty object (a patch that changes something)."""
    changes = {"not": {"type": "null"}, "minProperties": 1}
    return {"anyOf": [{"required": [name], "properties": {name: changes}} for name in names]}


_NUMERIC = re.compile(r"\s*[-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?\s*")


def _text_only(value: object) -> object:
    """A JSON date-time is a string, not a number (pydantic would also read a number, or a
    numeric string such as a query parameter's `0.5`, as a Unix time)."""
    if not isinstance(value, str | datetime) or (isinstance(value, str) and _NUMERIC.fullmatch(value)):
        raise ValueError("must be an RFC 3339 date-time string")
    return value


JsonDateTime = Annotated[datetime, BeforeValidator(_text_only)]


def _integral(value: object) -> object:
    """A JSON number with no fraction (`5.0`) is an integer; strings and booleans are not."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


JsonInt = Annotated[int, BeforeValidator(_integral), Field(strict=True)]
"""An integer as JSON Schema counts one: `5` or `5.0`, never `"5"` or `true`."""
JsonNumber = Annotated[float, Field(strict=True)]
"""A JSON number, never a string or a boolean."""


def _shallow_enough(value: dict[str, Any]) -> dict[str, Any]:
    """Refuse objects nested deeper than MAX_JSON_DEPTH (walked without recursion)."""
    pending: list[tuple[object, int]] = [(value, 1)]
    while pending:
        node, depth = pending.pop()
        if depth > MAX_JSON_DEPTH:
            raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels")
        children = list(node.values()) if isinstance(node, dict) else node
        if isinstance(children, list):
            pending += [(child, depth + 1) for child in children if isinstance(child, dict | list)]
    return value


STORABLE_JSON_SCHEMA: Final[dict[str, Any]] = {
    "description": "Any JSON value without NUL characters in its strings or keys.",
    "anyOf": [
        {"type": "string", "pattern": NO_NUL}, {"type": "number"}, {"type": "boolean"},
        {"type": "null"}, {"type": "array", "items": {"$ref": f"#/components/schemas/{STORABLE_JSON}"}},
        {"type": "object", "propertyNames": {"pattern": NO_NUL},
         "additionalProperties": {"$ref": f"#/components/schemas/{STORABLE_JSON}"}},
    ],
}
JsonObject = Annotated[dict[str, Any], AfterValidator(_shallow_enough), WithJsonSchema({
    "type": "object", "propertyNames": {"pattern": NO_NUL},
    "additionalProperties": {"$ref": f"#/components/schemas/{STORABLE_JSON}"},
    "description": f"A JSON object, nested at most {MAX_JSON_DEPTH} levels.",
})]
