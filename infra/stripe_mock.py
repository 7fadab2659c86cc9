"""Stripe's own ``stripe-mock`` server (validates every request against Stripe's OpenAPI spec).

The binary is built once with ``go install github.com/stripe/stripe-mock@latest`` into a git-ignored
cache (``<repo>/.cache/go-bin``, or ``$ONE_GO_BIN``; Go's module cache stays at its default), or taken
from ``$STRIPE_MOCK_BIN``. The server listens on loopback ports the OS picks (HTTP and HTTPS), read
back from its startup output, so parallel instances never collide.

Use it from Python::

    with StripeMock() as mock:
        gateway = StripeGateway("sk_test_123", api_base=mock.api_base)

or from a shell::

    python -m infra.stripe_mock install           # build the binary (once)
    python -m infra.stripe_mock run               # start on free ports, print api_base, block
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from pathlib import Path
from types import TracebackType

from infra.tool_cache import cache_dir, file_lock

__all__ = ["StripeMock", "StripeMockError", "default_bin_dir", "ensure_stripe_mock"]

MODULE = "github.com/stripe/stripe-mock"
BIN_DIR_ENV = "ONE_GO_BIN"
BIN_ENV = "STRIPE_MOCK_BIN"
VERSION_ENV = "ONE_STRIPE_MOCK_VERSION"  # e.g. v0.203.0; default "latest"
HOST = "127.0.0.1"
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
    """A stripe-mock process on free loopback ports; a context manager (``stop()`` on exit)."""

    def __init__(
        self, *, binary: Path | None = None, host: str = HOST, startup_timeout_s: float = 60.0
    ) -> None:
        self._binary = binary
        self._host = host
        self._startup_timeout_s = startup_timeout_s
        self._proc: subprocess.Popen[str] | None = None
        self._output: deque[str] = deque(maxlen=200)
        self._addresses: dict[str, str] = {}
        self._ready = threading.Event()

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
    def output(self) -> str:
        """The last lines stripe-mock printed (for diagnostics)."""
        return "\n".join(self._output)

    def start(self) -> StripeMock:
        """Start the server and wait until it answers an authenticated request."""
        if self._proc is not None:
            return self
        binary = self._binary or ensure_stripe_mock()
        any_port = f"{self._host}:0"
        self._proc = subprocess.Popen(
            [str(binary), "-http-addr", any_port, "-https-addr", any_port],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        atexit.register(self.stop)
        threading.Thread(
            target=self._pump, args=(self._proc,), name="stripe-mock-output", daemon=True
        ).start()
        deadline = time.monotonic() + self._startup_timeout_s
        try:
            while not self._ready.wait(0.05):
                self._check_alive()
                if time.monotonic() > deadline:
                    raise StripeMockError(f"stripe-mock did not report its ports in time:\n{self.output}")
            while not self._answers():
                self._check_alive()
                if time.monotonic() > deadline:
                    raise StripeMockError(f"stripe-mock did not answer at {self.api_base}:\n{self.output}")
                time.sleep(0.05)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Terminate the server (SIGTERM, then SIGKILL after 5 s)."""
        proc, self._proc = self._proc, None
        self._addresses.clear()
        self._ready.clear()
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    def __enter__(self) -> StripeMock:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _pump(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            line = line.rstrip()
            self._output.append(line)
            match = _LISTEN.search(line)
            if match:
                self._addresses[match.group(1)] = match.group(2)
                if {"HTTP", "HTTPS"} <= self._addresses.keys():
                    self._ready.set()

    def _check_alive(self) -> None:
        if self._proc is None or self._proc.poll() is not None:
            code = None if self._proc is None else self._proc.returncode
            raise StripeMockError(f"stripe-mock exited (code {code}) during startup:\n{self.output}")

    def _answers(self) -> bool:
        request = urllib.request.Request(
            f"{self.api_base}/v1/balance", headers={"Authorization": "Bearer sk_test_readiness"}
        )
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                return int(response.status) == 200
        except (urllib.error.URLError, OSError):
            return False


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """``install`` the binary, or ``run`` a server until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m infra.stripe_mock", description=__doc__.splitlines()[0])
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
