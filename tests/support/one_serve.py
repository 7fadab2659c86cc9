"""`one serve` as a process of its own on a loopback port, for the tests that need several API
processes, signals or crashes."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

import httpx

from tests.support.processes import ManagedProcess, free_port

ROOT = Path(__file__).resolve().parents[2]


class OneServe:
    """`one serve` with the given environment (e.g. `DATABASE_URL`) and data dir."""

    def __init__(self, logs: Path, data_dir: Path, env: Mapping[str, str] | None = None) -> None:
        self.port = free_port()
        self.data_dir = data_dir
        self.env = {**os.environ, "ONE_KNOWLEDGE": "0", **(env or {})}
        self.process = ManagedProcess("one serve", logs / f"serve-{self.port}.log")

    @property
    def url(self) -> str:
        """Its base URL."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120.0) -> OneServe:
        """Start it and wait until it is ready (`/readyz`)."""
        self.process.start([sys.executable, "-m", "api.cli", "serve", "--port", str(self.port),
                            "--data-dir", str(self.data_dir)], cwd=ROOT, env=self.env)
        self.process.wait_ready(lambda: httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200,
                                timeout=timeout, interval=0.1, retry_on=(httpx.HTTPError,))
        return self

    def __enter__(self) -> OneServe:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.process.stop()
