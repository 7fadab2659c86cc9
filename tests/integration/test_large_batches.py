"""A group commit of several megabytes completes (the library's pipelined insert hung at ~1 MB)."""

from __future__ import annotations

from concurrent.futures import wait

from api.runtime import Runtime
from commands import models as m


def test_four_megabyte_group_commit_completes(runtime: Runtime) -> None:
    futures = [runtime.bus.submit(m.CreateThing(type="blog_post", name=f"long {i}",
                                                properties={"body": "x" * 20_000}))
               for i in range(200)]
    done, pending = wait(futures, timeout=60)
    assert not pending, "the writer hung"
    positions = sorted(f.result().body["position"] for f in done)
    assert len(set(positions)) == 200
