"""Where the project caches the tools it fetches (Kafka jars, anvil, stripe-mock), and a lock so
parallel processes fetch each one only once."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]  # tests/support/tool_cache.py


def cache_dir(env_var: str, name: str) -> Path:
    """`$<env_var>` if set, else `<repo>/.cache/<name>` (git-ignored)."""
    env = os.environ.get(env_var)
    return Path(env).expanduser().resolve() if env else REPO_ROOT / ".cache" / name


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on `path` (created if missing) for the duration of the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
