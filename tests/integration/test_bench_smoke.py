"""The fleet benchmark (bench/run.py) still runs: a K=2 smoke, so the harness does not rot.

It asserts that every tool did the whole job on both hosts and that a table came out —
never how fast anything was (speed is the benchmark's business, not a test's). A K=1 run
with `--rtt-ms` checks that the tools go through the latency forwarder and are counted. pyinfra and
Ansible are included only when bench/.venv is already built: the smoke never installs them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.loopback import LoginUser

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
ROWS = {
    "redmedic": "redmedic `run --check`",
    "floor": "floor: paramiko, 1 channel/command",
    "floor-1exec": "floor: paramiko, 1 exec/host",
    "pyinfra": "pyinfra `--dry --diff`",
    "ansible": "ansible-core `--check --diff`",
}


def _bench_venv_built() -> bool:
    bin_dir = REPO / "bench" / ".venv" / "bin"
    return (bin_dir / "pyinfra").exists() and (bin_dir / "ansible-playbook").exists()


def test_the_benchmark_runs_every_tool_on_two_hosts_and_prints_a_table(
    test_user: LoginUser, tmp_path: Path
) -> None:
    tools = ["redmedic", "floor", "floor-1exec"]
    if _bench_venv_built():
        tools += ["pyinfra", "ansible"]
    readme, samples = tmp_path / "README.md", tmp_path / "samples.json"

    done = subprocess.run(
        [
            sys.executable, "bench/run.py", "--hosts", "2", "--repeat", "1",
            "--tools", ",".join(tools), "--no-install", "--no-wait",
            "--readme", str(readme), "--json", str(samples),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )  # fmt: skip

    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    runs = json.loads(samples.read_text())
    assert sorted(r["tool"] for r in runs) == sorted(tools)
    assert all(r["ok"] and r["k"] == 2 for r in runs), runs
    table = readme.read_text()
    assert "<!-- bench:compare -->" in table and "<!-- /bench:compare -->" in table
    for tool in tools:
        assert f"| 2 | {ROWS[tool]} |" in table
        assert f"| 2 | {ROWS[tool]} |" in done.stdout


def test_with_added_latency_every_tool_goes_through_the_forwarder_and_is_counted(
    test_user: LoginUser, tmp_path: Path
) -> None:
    tools = ["redmedic", "floor-1exec", "triage"]
    readme, samples = tmp_path / "README.md", tmp_path / "samples.json"

    done = subprocess.run(
        [
            sys.executable, "bench/run.py", "--hosts", "1", "--repeat", "1", "--rtt-ms", "20",
            "--tools", ",".join(tools), "--no-install", "--no-wait", "--section", "rtt",
            "--readme", str(readme), "--json", str(samples),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )  # fmt: skip

    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    runs = json.loads(samples.read_text())
    assert sorted(r["tool"] for r in runs) == sorted(tools)
    assert all(r["ok"] and r["connections"] == 1 and r["round_trips"] > 0 for r in runs), runs
    table = readme.read_text()
    assert "20 ms RTT added" in table and "| connections | round trips |" in table
    assert "1 connection, 1 channel, 1 exec" in table  # redmedic's own -vvv count
