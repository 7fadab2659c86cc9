"""Render the permission matrix (`domain.permissions.POLICY` with the routes that name each action)
into docs/permissions.md, between its matrix markers.

Usage: .venv/bin/python -m api.permissions_doc [--check]
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from domain.permissions import ACTION_SUMMARIES, CLIENT_ROLES, POLICY, PUBLIC

DOC = Path(__file__).resolve().parents[1] / "docs" / "permissions.md"
START, END = "<!-- matrix:start -->", "<!-- matrix:end -->"


def routes_by_action(openapi: dict[str, Any]) -> dict[str, list[str]]:
    """action → ["METHOD /path", …] from an OpenAPI document's `x-permission` fields."""
    found: dict[str, list[str]] = defaultdict(list)
    for path, operations in openapi["paths"].items():
        for method, operation in operations.items():
            action = operation.get("x-permission")
            if action is not None:
                found[action].append(f"{method.upper()} {path}")
    return found


def render_matrix(openapi: dict[str, Any]) -> str:
    """The markdown table: one row per action, one column per role."""
    routes = routes_by_action(openapi)
    lines = ["| action | what | routes | " + " | ".join(CLIENT_ROLES) + " |",
             "|---" * (3 + len(CLIENT_ROLES)) + "|"]
    for action, reaches in POLICY.items():
        listed = "<br>".join(f"`{route}`" for route in routes.get(action, []))
        cells = " | ".join(reaches[role].value for role in CLIENT_ROLES)
        lines.append(f"| `{action}` | {ACTION_SUMMARIES[action]} | {listed} | {cells} |")
    public = "<br>".join(f"`{route}`" for route in routes.get(PUBLIC, []))
    lines.append(f"| `{PUBLIC}` | authenticated by its own signature or token | {public} | "
                 + " | ".join("open" for _ in CLIENT_ROLES) + " |")
    return "\n".join(lines)


def parse_matrix(text: str) -> dict[str, dict[str, str]]:
    """action → role → cell, read back from the document (what the tests expect)."""
    body = text.split(START, 1)[1].split(END, 1)[0].strip().splitlines()
    header = [cell.strip() for cell in body[0].strip("|").split("|")]
    roles = header[3:]
    matrix: dict[str, dict[str, str]] = {}
    for line in body[2:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        matrix[cells[0].strip("`")] = dict(zip(roles, cells[3:], strict=True))
    return matrix


def updated(text: str, openapi: dict[str, Any]) -> str:
    """The document with its matrix section rendered afresh."""
    head, rest = text.split(START, 1)
    return f"{head}{START}\n{render_matrix(openapi)}\n{END}{rest.split(END, 1)[1]}"


def main(argv: list[str] | None = None) -> None:
    """Write the matrix into docs/permissions.md (or, with --check, fail if it is stale)."""
    from api.app import create_app
    from infra.settings import Settings

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 if the document is stale")
    args = parser.parse_args(argv)
    text = DOC.read_text()
    fresh = updated(text, create_app(settings=Settings()).openapi())
    if args.check:
        sys.exit(0 if fresh == text else 1)
    DOC.write_text(fresh)


if __name__ == "__main__":
    main()
