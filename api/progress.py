"""A progress bar over log positions for long CLI jobs (replay, rebuild): done / total, events/s, ETA."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

T = TypeVar("T")


def with_progress(label: str, start: int, total: int, work: Callable[[Callable[[int], None]], T]) -> T:
    """Run `work(read)` under a progress bar on stderr, over `total` positions after `start`;
    `work` calls `read(position)` as it gets through the log."""
    began = time.perf_counter()
    columns = (TextColumn(label), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rate]:,.0f} events/s"), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True)) as progress:
        task = progress.add_task(label, total=max(total, 0), rate=0.0)

        def read(position: int) -> None:
            done = position - start
            progress.update(task, completed=done, rate=done / max(time.perf_counter() - began, 1e-9))

        return work(read)
