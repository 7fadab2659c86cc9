"""The committed OneToken artifact is what contracts/compile.mjs produces with the pinned toolchain."""

from __future__ import annotations

import fcntl
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

CONTRACTS = Path(__file__).resolve().parents[2] / "contracts"
ARTIFACT = CONTRACTS / "artifacts" / "OneToken.json"
PINNED = ("solc", "@openzeppelin/contracts")


def _locked_versions() -> dict[str, str]:
    packages = json.loads((CONTRACTS / "package-lock.json").read_text())["packages"]
    return {name: packages[f"node_modules/{name}"]["version"] for name in PINNED}


def _installed_versions() -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    for name in PINNED:
        manifest = CONTRACTS / "node_modules" / name / "package.json"
        found[name] = json.loads(manifest.read_text())["version"] if manifest.is_file() else None
    return found


def _ensure_node_modules() -> None:
    """``npm ci`` in contracts/ when node_modules is missing or differs from the lockfile (once, locked)."""
    npm = shutil.which("npm")
    assert npm is not None, "npm is required to recompile the contract (Node.js 20+)"
    with open(Path(tempfile.gettempdir()) / "one-contracts-npm-ci.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _installed_versions() != _locked_versions():
            proc = subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund"],
                cwd=CONTRACTS,
                capture_output=True,
                text=True,
                timeout=600,
                check=False,
            )
            assert proc.returncode == 0, f"npm ci failed:\n{proc.stdout}\n{proc.stderr}"
    assert _installed_versions() == _locked_versions()


def test_recompiling_reproduces_the_committed_artifact_byte_for_byte(tmp_path: Path) -> None:
    _ensure_node_modules()
    out = tmp_path / "OneToken.json"
    node = shutil.which("node")
    assert node is not None, "node is required to recompile the contract"
    proc = subprocess.run(
        [node, "compile.mjs", str(out)],
        cwd=CONTRACTS,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, f"compile failed:\n{proc.stdout}\n{proc.stderr}"
    assert out.read_bytes() == ARTIFACT.read_bytes(), (
        "run `node contracts/compile.mjs` and commit the artifact"
    )


def test_artifact_shape_and_pinned_compiler() -> None:
    text = ARTIFACT.read_text()
    assert text.endswith("}\n")
    artifact = json.loads(text)
    assert list(artifact) == ["contractName", "abi", "bytecode", "deployedBytecode", "compiler"]
    assert artifact["contractName"] == "OneToken"
    assert artifact["bytecode"].startswith("0x60") and artifact["deployedBytecode"].startswith("0x60")
    assert artifact["compiler"]["version"].startswith(_locked_versions()["solc"] + "+commit.")
    settings = artifact["compiler"]["settings"]
    assert settings["optimizer"] == {"enabled": True, "runs": 200}
    assert settings["evmVersion"] == "cancun"
    functions = {
        e["name"]: [i["type"] for i in e["inputs"]] for e in artifact["abi"] if e["type"] == "function"
    }
    assert functions["mint"] == ["address", "uint256"]
    assert functions["burnFrom"] == ["address", "uint256"]
    assert {"owner", "transferOwnership", "balanceOf", "totalSupply", "transfer"} <= functions.keys()
    constructor = next(e for e in artifact["abi"] if e["type"] == "constructor")
    assert [i["type"] for i in constructor["inputs"]] == ["string", "string", "address"]
