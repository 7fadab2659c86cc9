"""The composition root: database, migrations, event log, command bus, projection runner."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from psycopg_pool import ConnectionPool

from api.keyring import KeyRing
from commands.bus import CommandBus
from commands.features import catalog_id
from commands.handlers import SYSTEM_ACTOR_ID, SYSTEM_ORG_ID, Context
from commands.models import CreateOrganization, CreatePerson, EnsureBootstrapKey, IssueApiKey
from commands.workflows import StartWorkflow
from domain.api_keys import MIN_BOOTSTRAP_LENGTH, OWNER_KEY_ID, hash_token, new_token
from domain.errors import AlreadyExists
from domain.features import FeatureCatalog
from domain.workflows import WorkflowDefinition
from eventlog.store import EventLog, open_event_log
from infra.database import ConnectionInfo, resolve_database, stop_embedded_server
from infra.locks import BOOTSTRAP, advisory_lock
from infra.migrations import migrate
from infra.settings import Settings
from projections.blue_green import rebuild_live, stale_projections
from projections.queries import token_owners
from projections.registry import PROJECTIONS
from projections.store import ProjectionSet
from providers.analysis import BusinessAnalyst, build_analyst
from providers.chain import TokenLedger
from providers.chat import ChatModel, build_chat
from providers.factory import build_ledger, build_payments, build_privy, embedder_spec
from providers.payments import PaymentGateway
from providers.privy import PrivyVerifier
from providers.services import HttpServices, Services, parse_service_urls
from sagas.chain_audit import missing_contracts
from sagas.chain_replay import replay_signed_transactions
from sagas.dsl_runner import DSL_ACTION, DslSteps, feature_definition
from sagas.luma_sync import LumaSync
from sagas.purchase_driver import PurchaseDriver
from sagas.runner import SagaRunner
from sagas.scheduler import Scheduler
from sagas.signing import Signer
from sagas.token_deployer import TokenDeployer
from sagas.workflow_actions import Action, standard_actions
from sagas.workflow_catalog import BUILT_IN
from sagas.workflow_driver import WorkflowDriver
from streams.inprocess import InProcessRunner
from streams.knowledge_runner import EmbedderFor, KnowledgeRunners, embedder_cache, text_fields
from streams.live import LiveLog
from streams.watermarks import knowledge_watermarks, lowest_watermark

log = logging.getLogger(__name__)
OWNER_KEY_FILE = "owner-key"


class NotCaughtUp(Exception):
    """Projections did not reach the requested position within the wait limit."""


class PositionAhead(Exception):
    """A read asked for a log position no write has reached: the client's error, answered at once."""


class Misconfigured(ValueError):
    """A setting that cannot work; the process stops before serving."""


@dataclass
class Runtime:
    """A running ONE: write side, read pool and (in embedded mode) the projection runner."""

    settings: Settings
    db: ConnectionInfo
    event_log: EventLog
    bus: CommandBus
    runner: InProcessRunner | None
    reads: ConnectionPool
    embedder_for: EmbedderFor
    keyring: KeyRing
    privy: PrivyVerifier | None = None
    knowledge: KnowledgeRunners | None = None
    sagas: SagaRunner | None = None
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    _chat: ChatModel | None = None
    """The time timers and schedules follow (tests move it with `start_sagas(clock=...)`)."""
    owner_key_file: Path | None = None
    """Where the first start wrote the platform-owner key (no `ONE_BOOTSTRAP_KEY`)."""
    owns_database: bool = False
    """It started the embedded PostgreSQL (and stops it on close)."""
    missing_contracts: list[str] = field(default_factory=list)
    """Tokens whose recorded contract the chain lacked when this process took the saga lead."""
    live: LiveLog = field(init=False)
    """The log's appends fanned out to `GET /v1/stream` clients (followed from the first one on)."""
    rebuilding: threading.Thread | None = None
    """The blue/green rebuild of read models whose projector version changed, if one runs."""
    _stop_rebuild: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.live = LiveLog(self.event_log, self.db)

    def rebuild_stale(self) -> None:
        """Rebuild, blue/green and in the background, the read models whose projector declares
        another version than they were built with (the others keep serving meanwhile)."""
        with self.reads.connection() as conn:
            if not stale_projections(conn, list(PROJECTIONS.values())):
                return
        self.rebuilding = threading.Thread(
            target=rebuild_live, args=(self.db, self.event_log, list(PROJECTIONS.values())),
            kwargs={"stop": self._stop_rebuild, "only_stale": True}, name="one-rebuild", daemon=True)
        self.rebuilding.start()

    @classmethod
    def start(cls, settings: Settings, db: ConnectionInfo | None = None) -> Runtime:
        """Bring everything up (database resolved from settings unless given)."""
        if settings.bootstrap_key is not None and len(settings.bootstrap_key) < MIN_BOOTSTRAP_LENGTH:
            raise Misconfigured(f"ONE_BOOTSTRAP_KEY must be at least {MIN_BOOTSTRAP_LENGTH} characters")
        try:
            privy = build_privy(settings)
        except ValueError as error:
            raise Misconfigured(str(error)) from error
        embedded = db is None and not settings.database_url
        db = db or resolve_database(settings)
        migrate(db)
        event_log = open_event_log(db, pool_size=settings.pool_size)
        runner = None if settings.distributed else InProcessRunner(
            event_log, db, ProjectionSet(tuple(PROJECTIONS.values()))
        )
        bus = CommandBus(event_log, max_batch=settings.max_batch).start()
        reads = ConnectionPool(
            db.conninfo, min_size=2, max_size=settings.pool_size, open=True,
            kwargs={"autocommit": True},
        )
        runtime = cls(settings, db, event_log, bus, runner, reads, embedder_cache(settings),
                      KeyRing(event_log, db).start(), privy, owns_database=embedded)
        runtime.bootstrap()
        runtime.rebuild_stale()
        if runner is not None:
            runner.start()
        if settings.run_knowledge and not settings.distributed:
            runtime.knowledge = KnowledgeRunners(
                event_log, db, embedder_spec(settings), runtime.embedder_for, text_fields(settings),
                retry_every_s=settings.knowledge_retry_s,
            ).start()
        if settings.run_sagas and not settings.distributed:
            runtime.start_sagas()
        return runtime

    def start_sagas(self, ledger: TokenLedger | None = None, payments: PaymentGateway | None = None,
                    clock: Callable[[], datetime] | None = None,
                    analyst: BusinessAnalyst | None = None, services: Services | None = None) -> SagaRunner:
        """Run the process drivers (token purchases, workflows) and the token deployer, with the
        configured providers unless given, on `clock` (tests move time with their own); across
        processes on one database only one runner leads, and an in-process chain is rebuilt from
        the log whenever this one takes the lead."""
        ledger = ledger or build_ledger(self.settings)
        payments = payments or build_payments(self.settings, self.db)
        clock = clock or self.clock
        self.clock = clock
        signer = Signer(ledger)
        purchases = PurchaseDriver(self.bus, self.event_log, payments, ledger, self.token_owners,
                                   signer=signer, clock=clock)
        actions: dict[str, Action] = {**standard_actions(analyst or build_analyst(self.settings)),
                   DSL_ACTION: DslSteps(self.event_log, self.reads, services or self.services())}
        workflows = WorkflowDriver(self.bus, self.event_log, self.reads, payments, actions, clock)

        def rebuild_chain() -> None:
            if ledger.ephemeral:
                replay_signed_transactions(self.event_log, ledger)
            with self.reads.connection() as conn:
                self.missing_contracts = missing_contracts(conn, ledger)
            for token in self.missing_contracts:
                log.error("token %s: its contract is not on the chain (purchases of it fail)", token)

        self.sagas = SagaRunner({"token_purchase": purchases, "workflow": workflows}, self.reads, self.db,
                                on_lead=rebuild_chain, clock=clock,
                                chores=(TokenDeployer(self.bus, self.event_log, self.reads, signer),
                                        self.scheduler(clock))).start()
        return self.sagas

    def chat_model(self) -> ChatModel:
        """How AI clones answer (the OpenAI SDK when configured, else the local responder)."""
        if self._chat is None:
            self._chat = build_chat(self.settings)
        return self._chat

    def services(self) -> Services:
        """The external services DSL features call (`ONE_SERVICES`)."""
        return HttpServices(parse_service_urls(self.settings.services))

    def scheduler(self, clock: Callable[[], datetime] | None = None) -> Scheduler:
        """The scheduler of this runtime's schedules and jobs (Luma sync, workflow start)."""
        return Scheduler(self.bus, self.event_log, self.reads,
                         {"luma.sync": LumaSync(self.bus, self.settings.luma_base_url),
                          "workflow.start": self._scheduled_workflow},
                         clock or self.clock)

    def _scheduled_workflow(self, org_id: str, params: Mapping[str, Any], now: datetime) -> dict[str, Any]:
        """The `workflow.start` job: start `params.workflow` for `params.subject_id`."""
        definition = self.workflow_definition(str(params["workflow"]), org_id)
        if definition is None:
            raise ValueError(f"no workflow {params['workflow']} in organization {org_id}")
        started = self.bus.execute(StartWorkflow(
            subject_id=params.get("subject_id"), input=params.get("input") or {},
            definition=definition.to_dict()), Context(org_id=org_id)).body
        if self.sagas is not None:
            self.sagas.poke(UUID(started["id"]), "workflow")
        return {"workflow_id": started["id"]}

    def workflow_definitions(self, org_id: str) -> list[WorkflowDefinition]:
        """The workflows the organization can start: the platform's and its registered DSL
        features (read from the log, so a feature runs as soon as it is registered)."""
        try:
            catalog: FeatureCatalog = self.event_log.repository.get(catalog_id(org_id))
        except AggregateNotFoundError:
            return list(BUILT_IN.values())
        features = [feature_definition(f["feature"], f["context"], f["version"])
                    for f in catalog.features.values()]
        return [*BUILT_IN.values(), *features]

    def workflow_definition(self, name: str, org_id: str) -> WorkflowDefinition | None:
        """The organization's workflow called `name`, if any."""
        return next((d for d in self.workflow_definitions(org_id) if d.name == name), None)

    def token_owners(self, org_id: str, token_id: str) -> dict[str, float]:
        """Owners of a token and their revenue shares, from its organization's read model."""
        with self.reads.connection() as conn:
            return token_owners(conn, org_id, token_id)

    def bootstrap(self) -> None:
        """Create the default organization, the system person (a platform owner) and its key:
        `ONE_BOOTSTRAP_KEY` if set, else (once) a key written to the data dir. Processes starting
        together on one database take turns."""
        with advisory_lock(self.db, BOOTSTRAP):
            self._bootstrap()

    def _bootstrap(self) -> None:
        system = Context()
        for command in (
            CreateOrganization(id=SYSTEM_ORG_ID, name="Default", slug="default", plan="platform"),
            CreatePerson(id=SYSTEM_ACTOR_ID, name="System", role="platform_owner"),
        ):
            with contextlib.suppress(AlreadyExists):
                self.bus.execute(command, system)
        if self.settings.bootstrap_key is not None:
            self.bus.execute(EnsureBootstrapKey(secret_hash=hash_token(self.settings.bootstrap_key)),
                             system)
        else:
            self.owner_key_file = self._first_owner_key()

    def _first_owner_key(self) -> Path | None:
        """On a new database, issue a platform-owner key and write it to a file only its owner
        can read; later starts find the key issued (by this or another process)."""
        path = Path(self.settings.data_dir) / OWNER_KEY_FILE
        token = new_token(OWNER_KEY_ID)
        try:
            self.bus.execute(IssueApiKey(id=OWNER_KEY_ID, name="owner key", person_id=SYSTEM_ACTOR_ID,
                                         secret_hash=hash_token(token)), Context())
        except AlreadyExists:
            return path if path.exists() else None
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(descriptor, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(token + "\n")
        log.warning("a platform-owner API key was written to %s", path)
        return path

    def close(self) -> None:
        """Stop the sagas (at a step boundary), the runners, the key ring and the writer (after
        its queued commands), close the pools, and stop the embedded PostgreSQL it started."""
        self.live.close()
        self._stop_rebuild.set()
        if self.rebuilding is not None:
            self.rebuilding.join(timeout=30)
        if self.sagas is not None:
            self.sagas.stop()
        if self.knowledge is not None:
            self.knowledge.stop()
        if self.runner is not None:
            self.runner.stop()
        self.keyring.stop()
        self.bus.stop()
        self.reads.close()
        self.event_log.close()
        if self.owns_database:
            stop_embedded_server(Path(self.settings.data_dir))

    def head(self) -> int:
        """The highest position in the log."""
        return self.event_log.recorder.max_notification_id() or 0

    def projected(self) -> int:
        """The log position up to which every read model is complete.

        Embedded mode: the in-process runner's position. Distributed mode: the lowest partition
        watermark the Faust workers have stored (0 until every partition has one).
        """
        if self.runner is not None:
            return self.runner.position
        with self.reads.connection() as conn:
            return lowest_watermark(conn, self.settings.kafka_topic, self.settings.kafka_partitions)

    def knowledge_projected(self) -> int:
        """The log position the active knowledge index reflects (vector projection)."""
        if self.knowledge is not None:
            return self.knowledge.position
        if not self.settings.distributed:
            return 0
        with self.reads.connection() as conn:
            return lowest_watermark(conn, knowledge_watermarks(self.settings.kafka_topic),
                                    self.settings.kafka_partitions)

    def projection_error(self) -> str | None:
        """Why projections are unhealthy, if they are (embedded mode)."""
        for runner in (self.runner, self.knowledge):
            if runner is not None and runner.error is not None:
                return str(runner.error)
        return None

    async def wait_for(self, position: int, timeout: float | None = None, knowledge: bool = False) -> None:
        """Wait until the read models (or, with `knowledge`, the knowledge index) reflect
        `position` (read-your-writes)."""
        limit = self.settings.read_wait_timeout_s if timeout is None else timeout
        deadline = time.monotonic() + limit
        delay = 0.001
        if (reached := await self._projected_async(knowledge)) < position:
            head = await asyncio.to_thread(self.head)
            if position > head:
                raise PositionAhead(f"position {position} is beyond the log's head ({head})")
        while (reached := await self._projected_async(knowledge)) < position:
            if time.monotonic() >= deadline:
                raise NotCaughtUp(f"read models are at {reached}, not yet at {position}")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.02)

    async def _projected_async(self, knowledge: bool) -> int:
        if knowledge:
            if self.knowledge is not None:
                return self.knowledge.position
            return await asyncio.to_thread(self.knowledge_projected)
        if self.runner is not None:
            return self.runner.position
        return await asyncio.to_thread(self.projected)

    def wait_for_sync(self, position: int, timeout: float = 10.0, knowledge: bool = False) -> None:
        """Blocking variant of `wait_for` (tests, CLI, benchmarks)."""
        progress = self.knowledge_projected if knowledge else self.projected
        deadline = time.monotonic() + timeout
        while (reached := progress()) < position:
            if time.monotonic() >= deadline:
                raise NotCaughtUp(f"read models at {reached}, wanted {position}")
            time.sleep(0.005)
