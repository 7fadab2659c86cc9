"""Parked work for the operators' tests: a real, fixable cause of parked events (a trigger an
operator put on `things` refuses some names, so the projection of those creations fails and is
parked; dropping it fixes the cause), and a parked purchase saga."""

from __future__ import annotations

import uuid

import psycopg

from api.runtime import Runtime
from commands.handlers import SYSTEM_ACTOR_ID, Context
from commands.processes import operator_action
from infra.database import ConnectionInfo
from tests.tenants import Tenant

REFUSAL = "cursed names are refused"


def refuse_cursed_names(db: ConnectionInfo) -> None:
    """The cause: a trigger that makes the things projection fail on some creations."""
    with psycopg.connect(db.conninfo, autocommit=True) as conn:
        conn.execute(f"""
            CREATE OR REPLACE FUNCTION refuse_cursed() RETURNS trigger AS $$
            BEGIN
                IF NEW.name LIKE 'cursed%' THEN RAISE EXCEPTION '{REFUSAL}'; END IF;
                RETURN NEW;
            END $$ LANGUAGE plpgsql""")
        conn.execute("CREATE OR REPLACE TRIGGER refuse_cursed BEFORE INSERT ON things"
                     " FOR EACH ROW EXECUTE FUNCTION refuse_cursed()")


def fix_the_cause(db: ConnectionInfo) -> None:
    with psycopg.connect(db.conninfo, autocommit=True) as conn:
        conn.execute("DROP TRIGGER refuse_cursed ON things")


def parked_purchase(runtime: Runtime, tenant: Tenant) -> str:
    """A token purchase of the tenant's owner, parked the way the driver parks one whose step keeps
    failing (through the saga's own transition); its id."""
    token = tenant.act(tenant.owner, "POST", "/v1/things", json={
        "type": "token", "name": f"token {uuid.uuid4().hex[:6]}",
        "properties": {"priceUsd": 1, "contractAddress": "0x" + "2" * 40}})
    purchase = tenant.act(tenant.owner, "POST", "/v1/token-purchases", json={
        "buyer_id": tenant.owner.id, "token_id": token["id"], "amount": 1, "payment_method": "pm_card_visa"})
    saga = uuid.UUID(purchase["id"])
    version: int = runtime.event_log.repository.get(saga).version
    park = operator_action(saga, version, lambda s: s.park(str(SYSTEM_ACTOR_ID), "the refund keeps failing"))
    tenant.position = max(tenant.position, runtime.bus.execute(park, Context()).body["position"])
    return str(saga)
