"""The docker-compose file describes the whole stack with the variables ONE actually reads."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _compose() -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_stack_has_every_service_with_health_checks() -> None:
    services = _compose()["services"]
    assert {"postgres", "kafka", "api", "relay", "worker", "knowledge", "sagas", "anvil",
            "stripe-mock"} <= set(services)
    for name in ("postgres", "kafka", "api"):
        assert "healthcheck" in services[name], name
    assert services["postgres"]["image"].startswith("pgvector/pgvector")
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert services["worker"]["command"] == ["one", "worker"]
    assert services["knowledge"]["command"] == ["one", "worker", "--knowledge"]
    assert services["relay"]["command"] == ["one", "relay"]


def test_app_services_use_variables_that_settings_read() -> None:
    settings_source = (ROOT / "infra" / "settings.py").read_text()
    read = set(re.findall(r'env\.get\("([A-Z_]+)"', settings_source))
    for name in ("api", "relay", "worker", "sagas"):
        service = _compose()["services"][name]
        assert set(service["environment"]) <= read, name
        assert {"DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS", "ONE_BOOTSTRAP_KEY"} <= set(service["environment"])
        assert service["depends_on"]["kafka"]["condition"] == "service_healthy"
    sagas = _compose()["services"]["sagas"]
    assert sagas["environment"]["CHAIN_RPC_URL"] == "http://anvil:8545"
