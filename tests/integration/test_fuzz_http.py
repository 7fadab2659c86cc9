"""Schema-driven fuzzing: Schemathesis generates requests from the OpenAPI document of a real
`one serve` (every operation, valid and invalid data, stateful sequences) and runs all its checks:
no 5xx, every status code and content type declared, schema-valid requests accepted and
schema-violating ones refused, and (tests/support/fuzz_hooks.py) no refused request appends to the
log. Exceptions the schema cannot express are in schemathesis.toml.

`ONE_FUZZ_EXAMPLES` (default 30 per operation) and `ONE_FUZZ_SEED` make a deeper or different run.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from infra.database import ConnectionInfo
from tests.conftest import BOOTSTRAP_KEY, database_url
from tests.support.one_serve import ROOT, OneServe

EXAMPLES = os.environ.get("ONE_FUZZ_EXAMPLES", "30")
SEED = os.environ.get("ONE_FUZZ_SEED", "3")


def test_schemathesis_finds_nothing(fresh_db: ConnectionInfo, tmp_path: Path) -> None:
    url = database_url(fresh_db)
    report = tmp_path / "refusals-checked"
    only_requests_append = {"DATABASE_URL": url, "ONE_RUN_SAGAS": "0", "ONE_KNOWLEDGE": "1"}
    with OneServe(tmp_path, tmp_path / "data", only_requests_append) as server:
        run = subprocess.run(
            [sys.executable, "-m", "schemathesis.cli", "--config-file", str(ROOT / "schemathesis.toml"),
             "run", f"{server.url}/openapi.json", "--header", f"Authorization: Bearer {BOOTSTRAP_KEY}",
             "--checks", "all", "--max-examples", EXAMPLES, "--seed", SEED, "--workers", "1",
             "--no-shrink", "--request-timeout", "30"],
            cwd=tmp_path, capture_output=True, text=True, timeout=1200, check=False,
            env={**os.environ, "PYTHONPATH": str(ROOT), "SCHEMATHESIS_HOOKS": "tests.support.fuzz_hooks",
                 "ONE_FUZZ_DATABASE_URL": url, "ONE_FUZZ_REPORT": str(report), "NO_COLOR": "1"},
        )
    (tmp_path / "schemathesis.txt").write_text(run.stdout + run.stderr)
    summary = f"{run.stdout[-6000:]}{run.stderr[-3000:]}\n(whole output: {tmp_path / 'schemathesis.txt'})"
    assert run.returncode == 0, summary
    assert " passed" in run.stdout and "failure" not in run.stdout.split("SUMMARY")[-1], summary
    assert int(report.read_text()) > 100, "the no-append check saw too few refused requests"
