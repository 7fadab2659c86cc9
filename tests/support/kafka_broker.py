"""A real single-node Apache Kafka 4.1 broker (KRaft) for tests and local runs, no Docker needed.

The broker jars come from Maven Central through ``tests/support/kafka/pom.xml`` and are copied
once into a git-ignored cache (``.cache/kafka/lib`` at the repo root, or ``$ONE_KAFKA_CACHE/lib``);
Maven's own repository stays at its default (``~/.m2``). The broker runs as
``java -cp '<lib>/*' kafka.Kafka`` with the machine's Java 17+, as combined broker + controller
(node 1) on loopback.

Use it from Python::

    with KafkaBroker() as broker:          # fresh temp data dir, free ports
        produce_to(broker.bootstrap)        # "127.0.0.1:PORT"
        broker.restart()                    # same ports, same data (broker-restart fault tests)
        broker.kill()                       # SIGKILL (crash fault tests); restart() brings it back

or from a shell::

    python -m tests.support.kafka_broker fetch               # download the jars (once)
    python -m tests.support.kafka_broker run --port 9092     # start and block until Ctrl-C
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

from kafka.admin import KafkaAdminClient
from kafka.errors import KafkaError

from tests.support.processes import HOST, ManagedProcess, free_port, port_free
from tests.support.tool_cache import cache_dir, file_lock

__all__ = ["KafkaBroker", "KafkaBrokerError", "default_cache_dir", "ensure_jars"]

KAFKA_DIR = Path(__file__).resolve().parent / "kafka"
POM = KAFKA_DIR / "pom.xml"
LOG4J_CONFIG = KAFKA_DIR / "log4j2.yaml"
CACHE_ENV = "ONE_KAFKA_CACHE"
MIN_JAVA = 17
_MARKER = ".complete"  # written into lib/ after a full copy; holds the pom's sha256
_ERROR_LINES = re.compile(r" ERROR | FATAL |Exception: ")  # shown first when the broker fails


class KafkaBrokerError(RuntimeError):
    """The jars could not be fetched, or the broker could not be started or stopped."""


# --------------------------------------------------------------------------------------------- jars


def default_cache_dir() -> Path:
    """``$ONE_KAFKA_CACHE`` if set, else ``<repo>/.cache/kafka``."""
    return cache_dir(CACHE_ENV, "kafka")


def ensure_jars(cache_dir: Path | None = None) -> Path:
    """Make sure ``<cache_dir>/lib`` holds the broker's full runtime classpath; return that folder.

    Runs ``mvn dependency:copy-dependencies`` on ``tests/support/kafka/pom.xml`` the first time, and
    again only if the pom changed (its sha256 is kept in ``lib/.complete``). The copy goes to a
    temporary folder that replaces ``lib`` only when Maven succeeded, so a failed or interrupted
    fetch never leaves a half classpath behind.
    """
    cache = (cache_dir or default_cache_dir()).resolve()
    lib = cache / "lib"
    if not POM.is_file():
        raise KafkaBrokerError(f"Kafka pom not found at {POM} (run from a checkout of the repository)")
    digest = hashlib.sha256(POM.read_bytes()).hexdigest()
    marker = lib / _MARKER
    if marker.is_file() and marker.read_text().strip() == digest:
        return lib
    with file_lock(cache / ".lock"):
        if marker.is_file() and marker.read_text().strip() == digest:  # another process fetched it
            return lib
        mvn = shutil.which("mvn")
        if mvn is None:
            raise KafkaBrokerError(
                "Maven ('mvn') is not on PATH; it is needed once to fetch the Kafka broker jars "
                "from Maven Central (apt-get install maven)"
            )
        staging = Path(tempfile.mkdtemp(prefix="lib.", dir=cache))
        cmd = [
            mvn, "-q", "-B", "-Dstyle.color=never", "-f", str(POM), "dependency:copy-dependencies",
            f"-DoutputDirectory={staging}", "-DincludeScope=runtime",
        ]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, check=False)
            if proc.returncode != 0 or not any(staging.glob("kafka_2.13-*.jar")):
                output = (proc.stdout + proc.stderr).strip()[-4000:]
                raise KafkaBrokerError(
                    f"fetching the Kafka jars failed (exit {proc.returncode}): {' '.join(cmd)}\n{output}"
                )
            (staging / _MARKER).write_text(digest + "\n")
            if lib.exists():
                shutil.rmtree(lib)
            staging.rename(lib)
        except subprocess.TimeoutExpired as exc:
            raise KafkaBrokerError(f"fetching the Kafka jars timed out: {' '.join(cmd)}") from exc
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return lib


# -------------------------------------------------------------------------------------------- java


_java_checked: dict[str, int] = {}


def _java() -> str:
    """The ``java`` executable (``$JAVA_HOME/bin/java`` first), checked to be Java 17 or newer."""
    java_home = os.environ.get("JAVA_HOME")
    candidate = Path(java_home) / "bin" / "java" if java_home else None
    java = str(candidate) if candidate and candidate.is_file() else shutil.which("java")
    if java is None:
        raise KafkaBrokerError(f"no 'java' on PATH (Kafka 4 needs Java {MIN_JAVA}+)")
    if java not in _java_checked:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False).stderr
        match = re.search(r'version "(\d+)(?:\.(\d+))?', out)
        if match is None:
            raise KafkaBrokerError(f"cannot tell the version of {java}: {out.strip()}")
        major = int(match.group(2)) if match.group(1) == "1" else int(match.group(1))
        _java_checked[java] = major
    if _java_checked[java] < MIN_JAVA:
        raise KafkaBrokerError(f"{java} is Java {_java_checked[java]}; Kafka 4 needs Java {MIN_JAVA}+")
    return java


# ------------------------------------------------------------------------------------------ broker


def _random_cluster_id() -> str:
    """A Kafka ``Uuid`` in its base64url form, as ``kafka-storage random-uuid`` prints it."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):  # Kafka avoids ids that look like command-line flags
            return text


def _read_properties(path: Path) -> dict[str, str]:
    props: dict[str, str] = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            props[key.strip()] = value.strip()
    return props


class KafkaBroker:
    """One Apache Kafka broker + KRaft controller (node 1) on loopback, run as a child JVM.

    ``data_dir`` holds ``server.properties``, the log dirs (``kraft-logs/``) and ``broker.log``
    (the JVM's stdout/stderr, appended across restarts). Without ``data_dir`` a temporary folder is
    used and removed on ``close()``/context exit (kept if ``start()`` failed, for the post-mortem).
    Ports are fixed at construction (free ones unless given; when ``data_dir`` already holds a
    broker, its ports are reused), so ``restart()`` keeps ``bootstrap`` valid.
    """

    def __init__(
        self,
        data_dir: Path | None = None,
        port: int | None = None,
        partitions: int = 4,
        *,
        controller_port: int | None = None,
        cache_dir: Path | None = None,
        heap: str = "512m",
        startup_timeout: float = 60.0,
        extra_config: Mapping[str, str] | None = None,
    ) -> None:
        self._owns_dir = data_dir is None
        if data_dir is None:
            data_dir = Path(tempfile.mkdtemp(prefix="one-kafka-"))
        self.data_dir = data_dir.resolve()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        previous = self._previous_ports()
        self.port = port or previous.get("port") or free_port()
        self.controller_port = controller_port or previous.get("controller") or free_port()
        if self.controller_port == self.port:
            self.controller_port = free_port()
        self.partitions = partitions
        self.cache_dir = cache_dir
        self.heap = heap
        self.startup_timeout = startup_timeout
        self.extra_config = dict(extra_config or {})
        self._process = ManagedProcess(
            "Kafka broker", self.log_path, error=KafkaBrokerError, error_lines=_ERROR_LINES
        )

    # -- paths and properties --------------------------------------------------------------------

    @property
    def bootstrap(self) -> str:
        """``host:port`` of the PLAINTEXT listener, for ``bootstrap_servers``."""
        return f"{HOST}:{self.port}"

    @property
    def log_path(self) -> Path:
        """The broker's combined stdout/stderr."""
        return self.data_dir / "broker.log"

    @property
    def properties_path(self) -> Path:
        return self.data_dir / "server.properties"

    @property
    def kafka_log_dir(self) -> Path:
        """Where the broker keeps partitions and the KRaft metadata log."""
        return self.data_dir / "kraft-logs"

    @property
    def pid(self) -> int | None:
        """The JVM's process id while it runs."""
        return self._process.pid

    def is_running(self) -> bool:
        """The JVM was started and has not exited."""
        return self._process.running

    def log_tail(self, lines: int = 60) -> str:
        """The last ``lines`` lines of ``broker.log``, for error messages."""
        return self._process.tail(lines)

    def _previous_ports(self) -> dict[str, int]:
        path = self.data_dir / "server.properties"
        if not path.is_file():
            return {}
        listeners = _read_properties(path).get("listeners", "")
        found = dict(re.findall(r"(PLAINTEXT|CONTROLLER)://[^:,]+:(\d+)", listeners))
        names = {"PLAINTEXT": "port", "CONTROLLER": "controller"}
        return {names[name]: int(value) for name, value in found.items()}

    def server_properties(self) -> dict[str, str]:
        """The broker configuration written to ``server.properties``."""
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.bootstrap.servers": f"{HOST}:{self.controller_port}",
            "controller.listener.names": "CONTROLLER",
            "listeners": f"PLAINTEXT://{HOST}:{self.port},CONTROLLER://{HOST}:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{HOST}:{self.port},CONTROLLER://{HOST}:{self.controller_port}",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(self.kafka_log_dir),
            "num.partitions": str(self.partitions),
            "default.replication.factor": "1",
            "min.insync.replicas": "1",
            "auto.create.topics.enable": "true",
            "group.initial.rebalance.delay.ms": "0",
            # Single node: every internal topic has one replica; fewer partitions start faster.
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "4",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            # After kill() the controller keeps the dead incarnation registered until its session
            # times out (default 9 s); a shorter session makes restart-after-crash faster.
            "broker.session.timeout.ms": "5000",
            "broker.heartbeat.interval.ms": "1000",
        }
        props.update(self.extra_config)
        return props

    def _write_properties(self) -> None:
        text = "".join(f"{key}={value}\n" for key, value in self.server_properties().items())
        self.properties_path.write_text("# written by tests/support/kafka_broker.py\n" + text)

    # -- lifecycle -------------------------------------------------------------------------------

    def _java_cmd(self, lib: Path, main: str, *args: str) -> list[str]:
        return [
            _java(), f"-Xmx{self.heap}", "-Xms128m", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
            "-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={LOG4J_CONFIG.as_uri()}",
            "-cp", f"{lib}/*", main, *args,
        ]

    def _format_storage(self, lib: Path) -> None:
        """``kafka-storage format --standalone`` once per data dir (a dynamic single-voter quorum)."""
        if (self.kafka_log_dir / "meta.properties").is_file():
            return
        cmd = self._java_cmd(
            lib, "kafka.tools.StorageTool", "format", "--standalone",
            "--cluster-id", _random_cluster_id(), "--config", str(self.properties_path),
        )
        self._process.run(cmd, label="kafka-storage format", timeout=120)

    def start(self) -> str:
        """Start the broker (formatting storage on first use) and wait until it serves metadata.

        Returns ``bootstrap``. Raises ``KafkaBrokerError`` with the tail of ``broker.log`` if the
        JVM exits or the broker is not ready within ``startup_timeout`` seconds.
        """
        if self.is_running():
            return self.bootstrap
        for port in (self.port, self.controller_port):
            if not port_free(port):
                raise KafkaBrokerError(f"port {HOST}:{port} is already in use (is another broker running?)")
        lib = ensure_jars(self.cache_dir)
        self._write_properties()
        self._format_storage(lib)
        self._process.start(
            self._java_cmd(lib, "kafka.Kafka", str(self.properties_path)),
            label="kafka.Kafka start", cwd=self.data_dir,
        )
        self._process.wait_ready(
            self._serving, timeout=self.startup_timeout, interval=0.25, retry_on=(OSError, KafkaError)
        )
        return self.bootstrap

    def _serving(self) -> bool:
        """The listener accepts connections and a metadata round trip lists this broker, unfenced."""
        with socket.create_connection((HOST, self.port), timeout=1):
            pass
        admin = KafkaAdminClient(
            bootstrap_servers=self.bootstrap, client_id="one-kafka-readiness",
            request_timeout_ms=5000, bootstrap_timeout_ms=5000,
        )
        try:
            cluster = admin.describe_cluster()
        finally:
            admin.close()
        return any(b.get("broker_id") == 1 and not b.get("is_fenced") for b in cluster.get("brokers", []))

    def stop(self, timeout: float = 30.0) -> None:
        """Controlled shutdown: SIGTERM, then SIGKILL after ``timeout`` seconds. Keeps the data."""
        self._process.stop(grace=timeout)

    def kill(self) -> None:
        """Crash the broker (SIGKILL, no controlled shutdown), for fault tests. Keeps the data."""
        self._process.kill()

    def restart(self) -> str:
        """``stop()`` (a no-op after ``kill()``) then ``start()`` on the same ports and data."""
        self.stop()
        return self.start()

    def close(self) -> None:
        """``stop()``, and remove the data dir if this broker created it."""
        self.stop()
        if self._owns_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> KafkaBroker:
        try:
            self.start()
        except BaseException:
            self.stop()  # the data dir (and broker.log) stays for a post-mortem
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self.is_running() else "stopped"
        return f"KafkaBroker({self.bootstrap}, {state}, data_dir={str(self.data_dir)!r})"


# --------------------------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    """``fetch`` the jars, or ``run`` a broker until Ctrl-C."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.support.kafka_broker", description=__doc__.split("\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    fetch = sub.add_parser("fetch", help="download the broker jars into the cache (once)")
    fetch.add_argument(
        "--cache", type=Path, default=None, help=f"cache dir (default: ${CACHE_ENV} or .cache/kafka)"
    )
    run = sub.add_parser("run", help="start a broker and block until Ctrl-C")
    run.add_argument("--port", type=int, default=None, help="PLAINTEXT port (default: a free one)")
    run.add_argument("--data-dir", type=Path, default=None, help="keep data here (default: a temp dir)")
    run.add_argument("--partitions", type=int, default=4, help="num.partitions for auto-created topics")
    args = parser.parse_args(argv)

    try:
        if args.command == "fetch":
            started = time.monotonic()
            lib = ensure_jars(args.cache)
            size = sum(p.stat().st_size for p in lib.glob("*.jar"))
            print(f"{lib}: {len(list(lib.glob('*.jar')))} jars, {size / 1e6:.1f} MB "
                  f"({time.monotonic() - started:.1f}s)")
            return 0
        def _on_term(signum: int, frame: object) -> None:
            raise KeyboardInterrupt  # SIGTERM (e.g. from a supervisor) stops the broker like Ctrl-C

        signal.signal(signal.SIGTERM, _on_term)
        broker = KafkaBroker(args.data_dir, args.port, args.partitions)
        started = time.monotonic()
        try:
            broker.start()
            print(f"Kafka broker ready at {broker.bootstrap} in {time.monotonic() - started:.1f}s "
                  f"(log: {broker.log_path}); Ctrl-C to stop", flush=True)
            while broker.is_running():
                time.sleep(0.5)
            print(f"Kafka broker exited\n{broker.log_tail()}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("stopping…", flush=True)
            return 0
        finally:
            broker.close()
    except KafkaBrokerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
