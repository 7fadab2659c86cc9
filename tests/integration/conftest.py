"""Fixtures of the integration tests: ONE deployed in each mode."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.database import ConnectionInfo
from tests.deployments import MODES, Deployment, deployed


@pytest.fixture(params=MODES)
def deployment(request: pytest.FixtureRequest, fresh_db: ConnectionInfo,
               tmp_path: Path) -> Iterator[Deployment]:
    """ONE serving HTTP, embedded and then distributed."""
    with deployed(request.param, fresh_db, request, tmp_path) as running:
        yield running


@pytest.fixture(params=MODES)
def knowledge_deployment(request: pytest.FixtureRequest, fresh_db: ConnectionInfo,
                         tmp_path: Path) -> Iterator[Deployment]:
    """The same, with the vector projection running."""
    with deployed(request.param, fresh_db, request, tmp_path, knowledge=True) as running:
        yield running
