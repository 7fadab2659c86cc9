"""A real ``anvil`` EVM node (Foundry) for tests and local runs, no Docker needed.

The binary comes from npm ``@foundry-rs/anvil-linux-amd64`` (pinned in ``ANVIL_PACKAGE``), installed
once with ``npm install --prefix`` into a git-ignored cache (``.cache/anvil`` at the repo root, or
``$ONE_ANVIL_CACHE``); ``$ONE_ANVIL_BIN`` points at an existing binary instead. Parallel processes
install it only once (file lock).

Use it from Python::

    with Anvil() as node:                   # free loopback port, anvil's dev mnemonic, chain id 31337
        w3 = Web3(Web3.HTTPProvider(node.rpc_url))
        snap = node.snapshot(); ...; node.revert(snap)
        node.kill()                          # SIGKILL ("chain node down"); node.start() brings it back

or from a shell::

    python -m tests.support.anvil fetch              # install the binary (once)
    python -m tests.support.anvil run --port 8545    # start and block until Ctrl-C

State is in memory: a restarted node starts from genesis unless ``state_file`` is given (anvil then
loads it on start and dumps it on a graceful ``stop()``; ``kill()`` loses what was not dumped).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

from tests.support.processes import HOST, ManagedProcess, free_port
from tests.support.tool_cache import cache_dir, file_lock

__all__ = [
    "ANVIL_PACKAGE",
    "DEV_MNEMONIC",
    "Anvil",
    "AnvilError",
    "default_cache_dir",
    "ensure_anvil",
    "rpc_call",
]

ANVIL_PACKAGE = "@foundry-rs/anvil-linux-amd64@1.7.1"
CACHE_ENV = "ONE_ANVIL_CACHE"
BIN_ENV = "ONE_ANVIL_BIN"
DEV_MNEMONIC = "test test test test test test test test test test test junk"
_MARKER = ".installed"  # holds ANVIL_PACKAGE once npm finished


class AnvilError(RuntimeError):
    """The binary could not be installed, or the node could not be started."""


def default_cache_dir() -> Path:
    """``$ONE_ANVIL_CACHE`` if set, else ``<repo>/.cache/anvil``."""
    return cache_dir(CACHE_ENV, "anvil")


def ensure_anvil(cache_dir: Path | None = None) -> Path:
    """The path of the ``anvil`` binary, installing ``ANVIL_PACKAGE`` with npm on first use."""
    override = os.environ.get(BIN_ENV)
    if override:
        return Path(override)
    cache = (cache_dir or default_cache_dir()).resolve()
    binary = cache / "node_modules" / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"
    marker = cache / _MARKER

    def ready() -> bool:
        return marker.is_file() and marker.read_text().strip() == ANVIL_PACKAGE and binary.is_file()

    if ready():
        return binary
    with file_lock(cache / ".lock"):
        if ready():
            return binary
        npm = shutil.which("npm")
        if npm is None:
            raise AnvilError(f"'npm' is not on PATH; it is needed once to install {ANVIL_PACKAGE}")
        cmd = [
            npm,
            "install",
            "--prefix",
            str(cache),
            "--no-save",
            "--no-package-lock",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
            ANVIL_PACKAGE,
        ]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
        except subprocess.TimeoutExpired as exc:
            raise AnvilError(f"installing anvil timed out: {' '.join(cmd)}") from exc
        if proc.returncode != 0 or not binary.is_file():
            output = (proc.stdout + proc.stderr).strip()[-4000:]
            raise AnvilError(f"installing anvil failed (exit {proc.returncode}): {' '.join(cmd)}\n{output}")
        marker.write_text(ANVIL_PACKAGE + "\n")
    return binary


def rpc_call(url: str, method: str, params: list[Any] | None = None, timeout: float = 5.0) -> Any:
    """One JSON-RPC call over HTTP (stdlib only); raises ``AnvilError`` on an RPC error."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params or []}).encode()
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        reply = json.loads(response.read())
    if "error" in reply:
        raise AnvilError(f"{method} failed: {reply['error']}")
    return reply.get("result")


class Anvil:
    """One anvil node on loopback, run as a child process; a context manager.

    The port is chosen once (free at construction unless given) and kept across ``stop()``/``start()``,
    so clients can reconnect to the same ``rpc_url`` after a simulated outage.
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        chain_id: int = 31337,
        mnemonic: str = DEV_MNEMONIC,
        accounts: int = 10,
        balance_eth: int = 10_000,
        block_time: float | None = None,
        state_file: Path | None = None,
        log_dir: Path | None = None,
        startup_timeout: float = 30.0,
    ) -> None:
        self.port = port or free_port()
        self.chain_id = chain_id
        self.mnemonic = mnemonic
        self.accounts = accounts
        self.balance_eth = balance_eth
        self.block_time = block_time
        self.state_file = state_file
        self.startup_timeout = startup_timeout
        self._own_log_dir = log_dir is None
        self.log_dir = log_dir or Path(tempfile.mkdtemp(prefix="one-anvil-"))
        self.log_path = self.log_dir / "anvil.log"
        self._process = ManagedProcess("anvil", self.log_path, error=AnvilError)

    @property
    def rpc_url(self) -> str:
        """``http://127.0.0.1:<port>``, the node's JSON-RPC endpoint."""
        return f"http://{HOST}:{self.port}"

    @property
    def running(self) -> bool:
        """The node was started and has not exited."""
        return self._process.running

    def command(self) -> list[str]:
        """The ``anvil`` command line for this node's settings."""
        cmd = [
            str(ensure_anvil()),
            "--host",
            HOST,
            "--port",
            str(self.port),
            "--chain-id",
            str(self.chain_id),
            "--mnemonic",
            self.mnemonic,
            "--accounts",
            str(self.accounts),
            "--balance",
            str(self.balance_eth),
        ]
        if self.block_time is not None:
            cmd += ["--block-time", str(self.block_time)]
        if self.state_file is not None:
            cmd += ["--state", str(self.state_file)]
        return cmd

    def start(self) -> Anvil:
        """Start the node (no-op if running) and wait until it answers ``eth_chainId``."""
        if self.running:
            return self
        self._process.start(self.command())
        self._process.wait_ready(
            self._answers, timeout=self.startup_timeout, retry_on=(OSError, ValueError, AnvilError)
        )
        return self

    def _answers(self) -> bool:
        return int(rpc_call(self.rpc_url, "eth_chainId", timeout=1.0), 16) == self.chain_id

    def stop(self, timeout: float = 10.0) -> None:
        """Graceful shutdown (SIGTERM; anvil dumps ``state_file`` if set), SIGKILL after ``timeout``."""
        self._process.stop(grace=timeout)

    def kill(self) -> None:
        """SIGKILL, as a crashed node."""
        self._process.kill()

    def restart(self) -> Anvil:
        """``stop()`` then ``start()`` on the same port (state survives only through ``state_file``)."""
        self.stop()
        return self.start()

    def rpc(self, method: str, *params: Any) -> Any:
        """One JSON-RPC call to this node."""
        return rpc_call(self.rpc_url, method, list(params))

    def snapshot(self) -> str:
        """``evm_snapshot``: an id to ``revert`` to (each id can be reverted to once)."""
        return str(self.rpc("evm_snapshot"))

    def revert(self, snapshot_id: str) -> None:
        """``evm_revert``; nonces go back too, so resync any ``NonceManager`` afterwards."""
        if not self.rpc("evm_revert", snapshot_id):
            raise AnvilError(f"evm_revert({snapshot_id}) refused")

    def close(self) -> None:
        """Stop the node and remove its temporary log folder (if this object created it)."""
        self.stop()
        if self._own_log_dir:
            shutil.rmtree(self.log_dir, ignore_errors=True)

    def __enter__(self) -> Anvil:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.support.anvil", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("fetch", help="install the anvil binary into the cache")
    run = sub.add_parser("run", help="start anvil and block until Ctrl-C")
    run.add_argument("--port", type=int, default=8545)
    run.add_argument("--chain-id", type=int, default=31337)
    run.add_argument("--block-time", type=float, default=None)
    run.add_argument("--state-file", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.cmd == "fetch":
        print(ensure_anvil())
        return
    node = Anvil(
        port=args.port, chain_id=args.chain_id, block_time=args.block_time, state_file=args.state_file
    )
    with node:
        print(f"anvil ready on {node.rpc_url} (chain id {node.chain_id}); log: {node.log_path}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()


if __name__ == "__main__":
    main()
