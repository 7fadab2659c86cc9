"""Runtime configuration read from the environment (and CLI flags)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


def default_data_dir() -> Path:
    """The per-user directory where the embedded PostgreSQL keeps its data."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "one-platform"


@dataclass(frozen=True)
class Settings:
    """Everything ONE needs to start; `from_env` reads the documented variables."""

    database_url: str | None = None
    data_dir: Path = field(default_factory=default_data_dir)
    max_batch: int = 512
    max_body_bytes: int = 256 * 1024
    read_wait_timeout_s: float = 5.0
    pool_size: int = 8
    kafka_bootstrap: str | None = None
    kafka_topic: str = "one.events"
    kafka_partitions: int = 8
    kafka_compression: str | None = "gzip"
    faust_app_id: str = "one-projections"
    stripe_api_key: str | None = None
    stripe_api_base: str | None = None
    stripe_webhook_secret: str | None = None
    chain_rpc_url: str | None = None
    chain_private_key: str | None = None
    custody_seed: str = "one-dev-custody-seed-change-me"
    run_sagas: bool = True
    run_knowledge: bool = True
    embedder: str = "local"
    embedding_model: str | None = None
    embedding_dimensions: int | None = None
    openai_api_key: str | None = None
    openai_base_url: str | None = None
    knowledge_fields: str = ""
    knowledge_retry_s: float = 60.0
    bootstrap_key: str | None = None
    privy_app_id: str | None = None
    privy_verification_key: str | None = None
    privy_org_id: str | None = None
    session_ttl_s: float = 3600.0
    chat_model: str = "gpt-4o-mini"
    luma_base_url: str = "https://lu.ma"
    services: str = ""
    clone_reward_tokens: int = 10
    chat_timeout_s: float = 30.0
    """`ONE_SERVICES`: JSON object of DSL service provider → base URL."""

    @property
    def distributed(self) -> bool:
        """True when Kafka carries the log to the projection workers (no in-process runner)."""
        return self.kafka_bootstrap is not None

    @classmethod
    def from_env(cls, data_dir: Path | None = None) -> Settings:
        """Build settings from ONE_* / DATABASE_URL environment variables."""
        env = os.environ
        return cls(
            database_url=env.get("DATABASE_URL") or None,
            data_dir=data_dir or Path(env.get("ONE_DATA_DIR") or default_data_dir()),
            max_batch=int(env.get("ONE_MAX_BATCH", "512")),
            max_body_bytes=int(env.get("ONE_MAX_BODY_BYTES", str(256 * 1024))),
            read_wait_timeout_s=float(env.get("ONE_READ_WAIT_TIMEOUT", "5")),
            pool_size=int(env.get("ONE_POOL_SIZE", "8")),
            kafka_bootstrap=env.get("KAFKA_BOOTSTRAP_SERVERS") or None,
            kafka_topic=env.get("ONE_KAFKA_TOPIC", "one.events"),
            kafka_partitions=int(env.get("ONE_KAFKA_PARTITIONS", "8")),
            kafka_compression=_codec(env.get("ONE_KAFKA_COMPRESSION", "gzip")),
            faust_app_id=env.get("ONE_FAUST_APP_ID", "one-projections"),
            stripe_api_key=env.get("STRIPE_API_KEY") or None,
            stripe_api_base=env.get("STRIPE_API_BASE") or None,
            stripe_webhook_secret=env.get("STRIPE_WEBHOOK_SECRET") or None,
            chain_rpc_url=env.get("CHAIN_RPC_URL") or None,
            chain_private_key=env.get("CHAIN_PRIVATE_KEY") or None,
            custody_seed=env.get("ONE_CUSTODY_SEED", "one-dev-custody-seed-change-me"),
            run_sagas=_flag(env.get("ONE_RUN_SAGAS", "1")),
            run_knowledge=_flag(env.get("ONE_KNOWLEDGE", "1")),
            embedder=env.get("ONE_EMBEDDER", "local"),
            embedding_model=env.get("ONE_EMBEDDING_MODEL") or None,
            embedding_dimensions=_optional_int(env.get("ONE_EMBEDDING_DIMENSIONS")),
            openai_api_key=env.get("OPENAI_API_KEY") or None,
            openai_base_url=env.get("OPENAI_BASE_URL") or None,
            knowledge_fields=env.get("ONE_KNOWLEDGE_FIELDS", ""),
            knowledge_retry_s=float(env.get("ONE_KNOWLEDGE_RETRY_SECONDS", "60")),
            bootstrap_key=env.get("ONE_BOOTSTRAP_KEY") or None,
            privy_app_id=env.get("PRIVY_APP_ID") or None,
            privy_verification_key=env.get("PRIVY_VERIFICATION_KEY") or None,
            privy_org_id=env.get("PRIVY_ORG_ID") or None,
            session_ttl_s=float(env.get("ONE_SESSION_TTL_SECONDS", "3600")),
            chat_model=env.get("ONE_CHAT_MODEL") or "gpt-4o-mini",
            luma_base_url=env.get("LUMA_BASE_URL") or "https://lu.ma",
            services=env.get("ONE_SERVICES", ""),
            clone_reward_tokens=int(env.get("ONE_CLONE_REWARD_TOKENS", "10")),
            chat_timeout_s=float(env.get("ONE_CHAT_TIMEOUT_SECONDS", "30")),
        )


def _flag(value: str) -> bool:
    return value.strip().lower() not in ("0", "false", "no", "off")


def _optional_int(value: str | None) -> int | None:
    return int(value) if value else None


KAFKA_CODECS = ("gzip", "none")
"""The relay's batch compressions the Faust workers can read without extra packages."""


def _codec(name: str) -> str | None:
    if name not in KAFKA_CODECS:
        raise ValueError(f"ONE_KAFKA_COMPRESSION must be one of {', '.join(KAFKA_CODECS)}, not {name!r}")
    return None if name == "none" else name
