"""Stripe's own ``stripe-mock`` server (validates every request against Stripe's OpenAPI spec).

The binary is built once with ``go install github.com/stripe/stripe-mock@latest`` into a git-ignored
cache (``<repo>/.cache/go-bin``, or ``$ONE_GO_BIN``; Go's module cache stays at its default), or taken
from ``$STRIPE_MOCK_BIN``. The server listens on loopback ports the OS picks (HTTP and HTTPS), read
back from its startup output (appended to ``log_path``), so parallel instances never collide.

Use it from Python::

    with StripeMock() as mock:
        gateway = StripeGateway("sk_test_123", api_base=mock.api_base)

or from a shell::

    python -m tests.support.stripe_mock install           # build the binary (once)
    python -m tests.support.stripe_mock run               # start on free ports, print api_base, block
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from types import TracebackType

from tests.support.processes import HOST, ManagedProcess
from tests.support.tool_cache import cache_dir, file_lock

__all__ = ["StripeMock", "StripeMockError", "default_bin_dir", "ensure_stripe_mock"]

MODULE = "github.com/stripe/stripe-mock"
BIN_DIR_ENV = "ONE_GO_BIN"
BIN_ENV = "STRIPE_MOCK_BIN"
VERSION_ENV = "ONE_STRIPE_MOCK_VERSION"  # e.g. v0.203.0; default "latest"
_LISTEN = re.compile(r"Listening for (HTTPS?) at address: (\S+)")


class StripeMockError(RuntimeError):
    """stripe-mock could not be installed, started or reached."""


def default_bin_dir() -> Path:
    """``$ONE_GO_BIN`` if set, else ``<repo>/.cache/go-bin``."""
    return cache_dir(BIN_DIR_ENV, "go-bin")


def _find_go() -> str:
    go = shutil.which("go") or next(
        (p for p in ("/usr/local/go/bin/go", "/usr/lib/go/bin/go") if os.access(p, os.X_OK)), None
    )
    if go is None:
        raise StripeMockError(
            "the Go toolchain ('go') is not on PATH: install Go (https://go.dev/dl/) so that "
            f"'go install {MODULE}@latest' can build stripe-mock, or set {BIN_ENV} to a stripe-mock binary"
        )
    return go


def ensure_stripe_mock(
    bin_dir: Path | None = None, *, version: str | None = None, timeout_s: float = 1800
) -> Path:
    """The stripe-mock binary: ``$STRIPE_MOCK_BIN``, else the cached build, else ``go install`` it now."""
    explicit = os.environ.get(BIN_ENV)
    if explicit:
        path = Path(explicit).expanduser()
        if not os.access(path, os.X_OK):
            raise StripeMockError(f"{BIN_ENV}={explicit} is not an executable file")
        return path
    bin_dir = bin_dir or default_bin_dir()
    binary = bin_dir / "stripe-mock"
    if os.access(binary, os.X_OK):
        return binary
    version = version or os.environ.get(VERSION_ENV) or "latest"
    with file_lock(bin_dir.parent / ".stripe-mock.lock"):
        if os.access(binary, os.X_OK):  # another process installed it while we waited
            return binary
        go = _find_go()
        bin_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "GOBIN": str(bin_dir)}
        started = time.monotonic()
        print(f"installing stripe-mock: go install {MODULE}@{version} (GOBIN={bin_dir})", file=sys.stderr)
        try:
            done = subprocess.run(
                [go, "install", f"{MODULE}@{version}"],
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise StripeMockError(
                f"'go install {MODULE}@{version}' timed out after {timeout_s:.0f}s"
            ) from exc
        elapsed = time.monotonic() - started
        if done.returncode != 0 or not os.access(binary, os.X_OK):
            tail = "\n".join((done.stderr or done.stdout or "").strip().splitlines()[-20:])
            raise StripeMockError(
                f"'go install {MODULE}@{version}' failed (exit {done.returncode}) "
                f"after {elapsed:.1f}s:\n{tail}"
            )
        (bin_dir / "stripe-mock.install.json").write_text(
            json.dumps({"module": f"{MODULE}@{version}", "seconds": round(elapsed, 1), "at": time.time()})
        )
        print(f"installed stripe-mock in {elapsed:.1f}s", file=sys.stderr)
    return binary


class StripeMock:
    """A stripe-mock process on free loopback ports; a context manager (``close()`` on exit).

    Its output goes to ``log_path`` in a temporary folder that ``close()`` removes.
    """

    def __init__(
        self, *, binary: Path | None = None, host: str = HOST, startup_timeout_s: float = 60.0
    ) -> None:
        self._binary = binary
        self._host = host
        self._startup_timeout_s = startup_timeout_s
        self._log_dir = Path(tempfile.mkdtemp(prefix="one-stripe-mock-"))
        self._process = ManagedProcess(
            "stripe-mock", self._log_dir / "stripe-mock.log", error=StripeMockError
        )
        self._addresses: dict[str, str] = {}

    @property
    def api_base(self) -> str:
        """``http://127.0.0.1:<port>``: pass it to ``StripeGateway(api_base=...)``."""
        if "HTTP" not in self._addresses:
            raise StripeMockError("stripe-mock is not running")
        return f"http://{self._addresses['HTTP']}"

    @property
    def https_address(self) -> str:
        """``127.0.0.1:<port>`` of the HTTPS listener (self-signed certificate)."""
        if "HTTPS" not in self._addresses:
            raise StripeMockError("stripe-mock is not running")
        return self._addresses["HTTPS"]

    @property
    def log_path(self) -> Path:
        """stripe-mock's combined stdout/stderr."""
        return self._process.log_path

    def start(self) -> StripeMock:
        """Start the server and wait until it answers an authenticated request."""
        if self._process.running:
            return self
        binary = self._binary or ensure_stripe_mock()
        any_port = f"{self._host}:0"
        self._process.start([str(binary), "-http-addr", any_port, "-https-addr", any_port])
        try:
            self._process.wait_ready(self._answers, timeout=self._startup_timeout_s, retry_on=(OSError,))
        except BaseException:
            self.stop()  # forget the addresses read from the failed run
            raise
        return self

    def stop(self) -> None:
        """Terminate the server (SIGTERM, then SIGKILL after 5 s)."""
        self._process.stop(grace=5.0)
        self._addresses.clear()

    def close(self) -> None:
        """``stop()`` and remove the log folder."""
        self.stop()
        shutil.rmtree(self._log_dir, ignore_errors=True)

    def __enter__(self) -> StripeMock:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _answers(self) -> bool:
        """Both listeners are reported in the output and ``GET /v1/balance`` succeeds."""
        self._addresses = dict(_LISTEN.findall(self._process.output()))
        if not {"HTTP", "HTTPS"} <= self._addresses.keys():
            return False
        request = urllib.request.Request(
            f"{self.api_base}/v1/balance", headers={"Authorization": "Bearer sk_test_readiness"}
        )
        with urllib.request.urlopen(request, timeout=2) as response:
            return int(response.status) == 200


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """``install`` the binary, or ``run`` a server until interrupted."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.support.stripe_mock", description=__doc__.splitlines()[0]
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("install", help="build stripe-mock into the cache (once)")
    sub.add_parser("run", help="start stripe-mock on free loopback ports and block")
    args = parser.parse_args(argv)
    try:
        if args.cmd == "install":
            print(ensure_stripe_mock())
            return 0
        signal.signal(signal.SIGTERM, _raise_interrupt)
        with StripeMock() as mock:
            print(f"stripe-mock ready: api_base={mock.api_base} https={mock.https_address}", flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                while True:
                    time.sleep(3600)
    except StripeMockError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
