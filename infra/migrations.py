"""Versioned, automatic schema migrations for everything beside the event log's own table.

Each migration runs once, in order, in its own transaction, under an advisory lock so several
processes starting together do not race. The applied versions are kept in `schema_migrations`.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from infra import locks
from infra.database import ConnectionInfo


@dataclass(frozen=True)
class Migration:
    """One schema change."""

    version: int
    name: str
    sql: str


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "idempotency and projection checkpoints", """
        CREATE TABLE idempotency_keys (
            actor_id text NOT NULL,
            key text NOT NULL,
            request_hash text,
            status int NOT NULL,
            response jsonb NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (actor_id, key)
        );
        CREATE TABLE projection_checkpoints (
            name text PRIMARY KEY,
            position bigint NOT NULL DEFAULT 0,
            updated_at timestamptz NOT NULL DEFAULT now()
        );
    """),
    Migration(2, "read models: things, tags, connections, activity", """
        CREATE TABLE things (
            id uuid PRIMARY KEY,
            org_id text NOT NULL,
            type text NOT NULL,
            name text NOT NULL,
            properties jsonb NOT NULL DEFAULT '{}',
            status text NOT NULL,
            tags text[] NOT NULL DEFAULT '{}',
            created_by text NOT NULL,
            created_at timestamptz NOT NULL,
            updated_at timestamptz NOT NULL,
            deleted_at timestamptz,
            created_position bigint NOT NULL,
            version int NOT NULL,
            position bigint NOT NULL
        );
        CREATE INDEX things_type_idx ON things (type, created_position DESC);
        CREATE INDEX things_type_status_idx ON things (type, status, created_position DESC);
        CREATE INDEX things_org_idx ON things (org_id, created_position DESC);
        CREATE INDEX things_status_idx ON things (status, created_position DESC);

        CREATE TABLE tags (
            tag text PRIMARY KEY,
            category text NOT NULL,
            value text NOT NULL,
            usage_count int NOT NULL DEFAULT 0
        );
        CREATE INDEX tags_category_idx ON tags (category, usage_count DESC);
        CREATE TABLE thing_tags (
            thing_id uuid NOT NULL,
            tag text NOT NULL,
            active boolean NOT NULL,
            version int NOT NULL,
            tagged_at timestamptz NOT NULL,
            PRIMARY KEY (thing_id, tag)
        );
        CREATE INDEX thing_tags_tag_idx ON thing_tags (tag, thing_id) WHERE active;

        CREATE TABLE connections (
            id uuid PRIMARY KEY,
            org_id text NOT NULL,
            from_id uuid NOT NULL,
            to_id uuid NOT NULL,
            type text NOT NULL,
            metadata jsonb NOT NULL DEFAULT '{}',
            created_at timestamptz NOT NULL,
            updated_at timestamptz NOT NULL,
            removed_at timestamptz,
            version int NOT NULL,
            position bigint NOT NULL
        );
        CREATE INDEX connections_from_type_idx ON connections (from_id, type) WHERE removed_at IS NULL;
        CREATE INDEX connections_to_type_idx ON connections (to_id, type) WHERE removed_at IS NULL;
        CREATE INDEX connections_from_to_type_idx ON connections (from_id, to_id, type);

        CREATE TABLE activity (
            position bigint PRIMARY KEY,
            event_id uuid NOT NULL,
            org_id text NOT NULL,
            type text NOT NULL,
            actor_id text NOT NULL,
            target_id uuid,
            metadata jsonb NOT NULL DEFAULT '{}',
            occurred_at timestamptz NOT NULL
        );
        CREATE INDEX activity_type_time_idx ON activity (type, occurred_at DESC);
        CREATE INDEX activity_actor_time_idx ON activity (actor_id, occurred_at DESC);
        CREATE INDEX activity_target_time_idx ON activity (target_id, occurred_at DESC);
    """),
    Migration(3, "distributed mode: partition watermarks and parked (poison) events", """
        CREATE TABLE stream_watermarks (
            topic text NOT NULL,
            partition int NOT NULL,
            position bigint NOT NULL,
            updated_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (topic, partition)
        );
        CREATE TABLE projection_errors (
            id bigserial PRIMARY KEY,
            position bigint NOT NULL,
            stream_id text NOT NULL,
            event_type text NOT NULL,
            error text NOT NULL,
            envelope jsonb NOT NULL,
            occurred_at timestamptz NOT NULL DEFAULT now()
        );
    """),
    Migration(4, "read model: token purchase sagas", """
        CREATE TABLE sagas (
            id uuid PRIMARY KEY,
            kind text NOT NULL,
            org_id text NOT NULL,
            buyer_id text NOT NULL,
            token_id text NOT NULL,
            amount bigint NOT NULL,
            usd_cents bigint NOT NULL,
            status text NOT NULL,
            step text NOT NULL,
            attempts int NOT NULL DEFAULT 0,
            retry_at timestamptz,
            reason text,
            started_at timestamptz NOT NULL,
            updated_at timestamptz NOT NULL,
            version int NOT NULL,
            position bigint NOT NULL
        );
        CREATE INDEX sagas_due_idx ON sagas (retry_at NULLS FIRST)
            WHERE status IN ('running', 'compensating');
        CREATE INDEX sagas_status_idx ON sagas (status, updated_at DESC);
    """),
    Migration(5, "things: newest-first listing without a type filter", """
        CREATE INDEX things_created_idx ON things (created_position DESC);
    """),
    Migration(6, "knowledge: vector indexes registry (per-index tables are created on demand)", """
        CREATE EXTENSION IF NOT EXISTS vector;
        CREATE TABLE knowledge_indexes (
            name text PRIMARY KEY,
            spec jsonb NOT NULL,
            dimension int NOT NULL,
            status text NOT NULL CHECK (status IN ('building', 'active', 'retired')),
            created_at timestamptz NOT NULL DEFAULT now(),
            activated_at timestamptz
        );
        CREATE UNIQUE INDEX knowledge_indexes_one_active ON knowledge_indexes ((true))
            WHERE status = 'active';
        ALTER TABLE projection_errors ADD COLUMN projection text;
    """),
    Migration(7, "identity: personal-data keys; people, organizations and API keys read models;"
                 " organization-first indexes", """
        CREATE TABLE person_keys (
            person_id uuid PRIMARY KEY,
            key bytea NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE TABLE organizations (
            id uuid PRIMARY KEY,
            name text NOT NULL,
            slug text NOT NULL,
            plan text NOT NULL,
            created_at timestamptz NOT NULL,
            updated_at timestamptz NOT NULL,
            version int NOT NULL,
            position bigint NOT NULL
        );
        CREATE TABLE people (
            id uuid PRIMARY KEY,
            org_id text NOT NULL,
            role text NOT NULL,
            account_status text NOT NULL,
            primary_auth_method text NOT NULL,
            personal jsonb NOT NULL DEFAULT '{}',
            profile jsonb NOT NULL DEFAULT '{}',
            last_login_at timestamptz,
            created_at timestamptz NOT NULL,
            updated_at timestamptz NOT NULL,
            deleted_at timestamptz,
            erased_at timestamptz,
            created_position bigint NOT NULL,
            version int NOT NULL,
            position bigint NOT NULL
        );
        CREATE INDEX people_org_idx ON people (org_id, created_position DESC);
        CREATE INDEX people_org_role_idx ON people (org_id, role, created_position DESC);
        CREATE INDEX people_org_status_idx ON people (org_id, account_status, created_position DESC);
        CREATE TABLE api_keys (
            id uuid PRIMARY KEY,
            org_id text NOT NULL,
            person_id uuid NOT NULL,
            name text NOT NULL,
            kind text NOT NULL,
            created_by text NOT NULL,
            created_at timestamptz NOT NULL,
            expires_at timestamptz,
            revoked_at timestamptz,
            created_position bigint NOT NULL,
            version int NOT NULL,
            position bigint NOT NULL
        );
        CREATE INDEX api_keys_org_person_idx ON api_keys (org_id, person_id, created_position DESC);
        CREATE INDEX things_org_type_idx ON things (org_id, type, created_position DESC);
        CREATE INDEX activity_org_idx ON activity (org_id, position DESC);
        CREATE INDEX connections_org_idx ON connections (org_id, position);
        DROP TABLE tags;
        CREATE TABLE tags (
            org_id text NOT NULL,
            tag text NOT NULL,
            category text NOT NULL,
            value text NOT NULL,
            usage_count int NOT NULL DEFAULT 0,
            PRIMARY KEY (org_id, tag)
        );
        CREATE INDEX tags_org_category_idx ON tags (org_id, category, usage_count DESC);
        TRUNCATE thing_tags;
        DELETE FROM projection_checkpoints WHERE name = 'tags';  -- rebuilt per organization
    """),
    Migration(8, "the Stripe test-mode sandbox's state, shared by every process on the database", """
        CREATE TABLE payment_sandbox (
            id int PRIMARY KEY CHECK (id = 1),
            state jsonb NOT NULL
        );
    """),
    Migration(9, "parked events handled in place: each one's status (open, retried, skipped) and the"
                 " operator's decision", """
        ALTER TABLE projection_errors
            ADD COLUMN status text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'retried', 'skipped')),
            ADD COLUMN attempts int NOT NULL DEFAULT 1,
            ADD COLUMN note text,
            ADD COLUMN resolved_by text,
            ADD COLUMN resolved_at timestamptz;
        CREATE INDEX projection_errors_open_idx ON projection_errors (position) WHERE status = 'open';
    """),
    Migration(10, "blue/green rebuilds: the version each read model was built with, and rebuild progress", """
        ALTER TABLE projection_checkpoints ADD COLUMN version int NOT NULL DEFAULT 1;
        CREATE TABLE projection_rebuilds (
            name text PRIMARY KEY,
            position bigint NOT NULL,
            target bigint NOT NULL,
            rate double precision NOT NULL,
            started_at timestamptz NOT NULL,
            updated_at timestamptz NOT NULL
        );
    """),
    Migration(11, "workflow instances run on the saga runner: their rows in sagas", """
        ALTER TABLE sagas ALTER COLUMN buyer_id DROP NOT NULL, ALTER COLUMN token_id DROP NOT NULL,
            ALTER COLUMN amount DROP NOT NULL, ALTER COLUMN usd_cents DROP NOT NULL,
            ADD COLUMN subject_id text, ADD COLUMN workflow text;
        DROP INDEX sagas_due_idx;
        CREATE INDEX sagas_due_idx ON sagas (retry_at NULLS FIRST)
            WHERE status IN ('running', 'compensating', 'waiting');
    """),
    Migration(12, "scheduled jobs: one row per schedule with its next tick and last outcome", """
        CREATE TABLE schedules (
            id uuid PRIMARY KEY,
            org_id text NOT NULL,
            name text NOT NULL,
            cron text NOT NULL,
            job text NOT NULL,
            params jsonb NOT NULL,
            status text NOT NULL,
            next_at timestamptz,
            claimed_tick timestamptz,
            last_tick timestamptz,
            last_outcome text,
            last_detail jsonb,
            fired int NOT NULL DEFAULT 0,
            created_at timestamptz NOT NULL,
            updated_at timestamptz NOT NULL,
            version int NOT NULL,
            position bigint NOT NULL
        );
        CREATE INDEX schedules_due_idx ON schedules (next_at) WHERE status = 'active';
        CREATE INDEX schedules_org_idx ON schedules (org_id, name);
    """),
    Migration(13, "agent marketplace: one row per agent execution (status, tokens, cost, duration)", """
        CREATE TABLE agent_executions (
            id uuid PRIMARY KEY,
            org_id text NOT NULL,
            agent_id uuid NOT NULL,
            actor_id text NOT NULL,
            status text NOT NULL,
            input text NOT NULL,
            output text,
            error text,
            model text NOT NULL,
            source text,
            tokens_used int NOT NULL DEFAULT 0,
            cost_usd numeric(18, 6) NOT NULL DEFAULT 0,
            duration_ms int,
            per_execution_usd numeric(18, 6) NOT NULL,
            per_1k_tokens_usd numeric(18, 6) NOT NULL,
            queued_at timestamptz NOT NULL,
            started_at timestamptz,
            finished_at timestamptz,
            version int NOT NULL,
            position bigint NOT NULL
        );
        CREATE INDEX agent_executions_agent_idx ON agent_executions (agent_id, status, queued_at DESC);
        CREATE INDEX agent_executions_org_idx ON agent_executions (org_id, queued_at);
    """),
)


def migrate(db: ConnectionInfo) -> list[int]:
    """Apply pending migrations (one process at a time); return the versions applied now."""
    applied_now: list[int] = []
    with locks.advisory_lock(db, locks.MIGRATIONS), psycopg.connect(db.conninfo, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version int PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
        for migration in MIGRATIONS:
            if migration.version in done:
                continue
            with conn.transaction():
                conn.execute(migration.sql.encode())
                conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                    (migration.version, migration.name),
                )
            applied_now.append(migration.version)
    return applied_now


def schema_version(db: ConnectionInfo) -> int:
    """The highest applied migration version (0 if none)."""
    with psycopg.connect(db.conninfo) as conn:
        row = conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()
    return int(row[0]) if row else 0
