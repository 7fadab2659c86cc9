"""A real, fixable cause of parked events: a trigger an operator put on `things` refuses some
names, so the projection of those creations fails and is parked; dropping it fixes the cause."""

from __future__ import annotations

import psycopg

from infra.database import ConnectionInfo

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
