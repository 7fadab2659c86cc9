"""Old connection names keep their meaning: each legacy alias is stored under its consolidated
type with the variant it implied in the metadata (e.g. `purchased` → `transacted` +
`transactionType: purchase`), in the log and in the read model."""

from __future__ import annotations

from uuid import UUID

import pytest

from api.runtime import Runtime
from commands import models as m
from domain.connections import Connection
from domain.ontology import LEGACY_ALIASES, LEGACY_VARIANTS
from projections.queries import get_connection
from tests.conftest import bearer, served
from tests.tenants import Tenant

ALIASES = sorted(LEGACY_ALIASES["connection"])


@pytest.mark.parametrize("alias", ALIASES)
def test_an_alias_keeps_the_metadata_it_implies(runtime: Runtime, alias: str) -> None:
    source, target = (UUID(runtime.bus.execute(m.CreateThing(type="creator", name=n)).body["id"])
                      for n in ("from", "to"))
    made = runtime.bus.execute(m.CreateConnection(from_id=source, to_id=target, type=alias,
                                                  metadata={"note": "kept"})).body
    implied = dict(LEGACY_VARIANTS["connection"][alias])
    stored: Connection = runtime.event_log.repository.get(UUID(made["id"]))
    assert stored.type == LEGACY_ALIASES["connection"][alias]
    assert stored.metadata == {"note": "kept", **implied}
    runtime.wait_for_sync(made["position"])
    with runtime.reads.connection() as conn:
        row = get_connection(conn, stored.org_id, UUID(made["id"]))
    assert row is not None and row["type"] == stored.type and row["metadata"] == stored.metadata


def test_a_contradicting_variant_is_refused_over_http(runtime: Runtime) -> None:
    with served(runtime) as client:
        acme = Tenant.found(client, "Acme")
        post = acme.act(acme.owner, "POST", "/v1/things", json={"type": "blog_post", "name": "p"})
        fan = acme.act(acme.owner, "POST", "/v1/things", json={"type": "audience_member", "name": "f"})
        liked = acme.act(acme.owner, "POST", "/v1/connections", json={
            "from_id": fan["id"], "to_id": post["id"], "type": "content_liked"})
        edge = acme.read(acme.owner, f"/v1/connections/{liked['id']}")
        assert (edge["type"], edge["metadata"]) == ("engaged_with", {"engagementType": "liked"})
        refused = client.post("/v1/connections", headers=bearer(acme.owner.key), json={
            "from_id": fan["id"], "to_id": post["id"], "type": "content_shared",
            "metadata": {"engagementType": "liked"}})
        assert refused.status_code == 422 and refused.json()["field"] == "metadata.engagementType"
