"""The child processes the launchers run (Kafka broker, anvil, stripe-mock): free loopback ports,
output appended to a log file, a bounded wait for readiness, and a stop that always reaps.

A process its owner forgot to stop is stopped when the interpreter exits, so a test run leaves no
process behind.
"""

from __future__ import annotations

import atexit
import contextlib
import re
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO

__all__ = ["HOST", "ManagedProcess", "free_port", "port_free"]

HOST = "127.0.0.1"
_ERROR_LINES_SHOWN = 12


def free_port() -> int:
    """A TCP port on loopback that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def port_free(port: int) -> bool:
    """Nothing listens on loopback ``port`` (TIME_WAIT leftovers of a killed process do not count)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
        return True


_running: set[ManagedProcess] = set()


@atexit.register
def _stop_all() -> None:
    for process in list(_running):
        with contextlib.suppress(Exception):
            process.stop(grace=5.0)


class ManagedProcess:
    """One child process at a time, its stdout and stderr appended to ``log_path``.

    Each ``start()`` or ``run()`` writes a ``=== <label> <time> ===`` line first, so the log keeps
    every run. Failures raise ``error`` (the launcher's own exception type) carrying the tail of the
    log and, if ``error_lines`` is given, the current run's lines that match it.
    """

    def __init__(
        self,
        name: str,
        log_path: Path,
        *,
        error: type[Exception] = RuntimeError,
        error_lines: re.Pattern[str] | None = None,
    ) -> None:
        self.name = name
        self.log_path = log_path
        self.error = error
        self.error_lines = error_lines
        self._proc: subprocess.Popen[bytes] | None = None
        self._run_offset = 0  # where the latest run's output starts in the log

    @property
    def pid(self) -> int | None:
        """The process id while it runs."""
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    @property
    def died(self) -> int | None:
        """The exit code if it exited without being stopped (None while it runs or once stopped)."""
        proc = self._proc
        return None if proc is None else proc.poll()

    @property
    def running(self) -> bool:
        """The process was started and has not exited."""
        return self.pid is not None

    def output(self) -> str:
        """What the latest run wrote to the log."""
        try:
            with self.log_path.open("rb") as log:
                log.seek(self._run_offset)
                return log.read().decode(errors="replace")
        except OSError:
            return ""

    def tail(self, lines: int = 60) -> str:
        """The last ``lines`` lines of the log."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return f"(no log at {self.log_path})"
        return "\n".join(text.splitlines()[-lines:])

    def failure(self, message: str) -> Exception:
        """An ``error`` with ``message``, the latest run's error lines and the tail of the log."""
        parts = [message]
        if self.error_lines is not None:
            pattern = self.error_lines
            found = [line for line in self.output().splitlines() if pattern.search(line)]
            shown = "\n".join(found[:_ERROR_LINES_SHOWN]) or "(none)"
            parts.append(f"--- errors in {self.log_path} ---\n{shown}")
        parts.append(f"--- tail of {self.log_path} ---\n{self.tail()}")
        return self.error("\n".join(parts))

    def _open_log(self, label: str) -> IO[bytes]:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self._run_offset = log.tell()
        log.write(f"=== {label} {time.strftime('%Y-%m-%d %H:%M:%S')} ===\n".encode())
        log.flush()
        return log

    def run(self, cmd: Sequence[str], *, label: str, timeout: float, cwd: Path | None = None) -> None:
        """Run a set-up step to completion, output to the log; raise ``error`` if it fails or hangs."""
        with self._open_log(label) as log:
            try:
                done = subprocess.run(
                    list(cmd), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    cwd=cwd, timeout=timeout, check=False,
                )
            except subprocess.TimeoutExpired as exc:
                raise self.failure(f"{label} timed out after {timeout:g}s") from exc
        if done.returncode != 0:
            raise self.failure(f"{label} failed (exit {done.returncode})")

    def start(self, cmd: Sequence[str], *, label: str | None = None, cwd: Path | None = None,
              env: Mapping[str, str] | None = None) -> None:
        """Start ``cmd`` in its own session (a terminal's Ctrl-C reaches only this Python process)."""
        if self.running:
            raise self.error(f"{self.name} is already running (pid {self.pid})")
        with self._open_log(label or f"{self.name} start") as log:
            self._proc = subprocess.Popen(
                list(cmd), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                cwd=cwd, env=None if env is None else dict(env), start_new_session=True,
            )
        _running.add(self)

    def wait_ready(
        self,
        ready: Callable[[], bool],
        *,
        timeout: float,
        interval: float = 0.05,
        retry_on: tuple[type[Exception], ...] = (),
    ) -> None:
        """Poll ``ready()`` until it returns true; an exception in ``retry_on`` means "not yet".

        If the process exits, ``timeout`` seconds pass or ``ready()`` raises anything else, the
        process is killed and the error raised (``error`` with the log, for the first two).
        """
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        try:
            while True:
                proc = self._proc
                if proc is None or proc.poll() is not None:
                    code = None if proc is None else proc.returncode
                    raise self.failure(f"{self.name} exited (code {code}) during start-up")
                try:
                    if ready():
                        return
                except retry_on as exc:
                    last_error = exc
                if time.monotonic() > deadline:
                    detail = f" (last error: {last_error!r})" if last_error is not None else ""
                    raise self.failure(f"{self.name} not ready after {timeout:g}s{detail}")
                time.sleep(interval)
        except BaseException:
            self.kill()
            raise

    def signal(self, sig: int, timeout: float) -> int:
        """Send ``sig`` and wait for the process to exit by itself; its exit code (the error, and
        a kill, if it is still running after ``timeout`` seconds)."""
        proc = self._proc
        if proc is None:
            raise self.error(f"{self.name} is not running")
        proc.send_signal(sig)
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise self.failure(f"{self.name} still runs {timeout:g}s after signal {sig}") from None
        finally:
            self.kill()
        return code

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if the process still runs after ``grace`` seconds; reaps it."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(grace)
        self.kill()

    def kill(self) -> None:
        """SIGKILL (a crash: no clean shutdown) if it runs; reaps it."""
        proc = self._proc
        if proc is not None:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        self._proc = None
        _running.discard(self)
