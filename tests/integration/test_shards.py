"""A fleet split over four control machines with `--shard K/4`, over real SSH with sudo.

User story: given ten simulated hosts (a real sshd each) whose redis.conf only root can
write, when four `redmedic run --shard K/4 --yes --output json --audit-log audit-K.jsonl`
processes run at once, as four jobs of an Indexed Job or a CI matrix would, then every
host is fixed by exactly one of them, `redmedic report` makes one summary of their outputs
(apart or concatenated) and of their audit logs, and the concatenated audit log is one
log `redmedic rollback` undoes a shard's run from.
"""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.loopback import LoginUser, SshdHost, SshSession

pytestmark = pytest.mark.integration

REDMEDIC = str(Path(sys.executable).with_name("redmedic"))
SHARDS = 4
BROKEN = "# redis\nbind 127.0.0.1 -::1\nport 6379\n"
FIXED = "# redis\nbind 0.0.0.0 -::*\nport 6379\n"

PLAYBOOK = """\
name: Fix bind
hosts: redis
become: true
fix:
  - name: Listen on all interfaces
    file_line: {path: "{{ redis_conf }}", regexp: '^bind ', line: 'bind 0.0.0.0 -::*'}
verify:
  - name: The config listens on all interfaces
    shell: grep -qx 'bind 0.0.0.0 -::\\*' {{ redis_conf | quote }}
"""


@dataclass
class Site:
    dir: Path
    inventory: Path
    known_hosts: Path
    playbook: Path
    confs: dict[str, Path]

    def fleet_flags(self) -> list[str]:
        # A generous connect timeout: on a busy 2-core machine, logins at once can be slow.
        return [
            "-i", str(self.inventory), "--known-hosts", str(self.known_hosts), "--yes",
            "--connect-timeout", "60",
        ]  # fmt: skip


@pytest.fixture(scope="module")
def fleet(ssh_session: SshSession) -> list[SshdHost]:
    return [ssh_session.start_sshd(name=f"redis-{n:02d}") for n in range(1, 11)]


@pytest.fixture
def site(
    tmp_path: Path, fleet: list[SshdHost], ssh_session: SshSession, test_user: LoginUser
) -> Site:
    nobody = pwd.getpwnam("nobody")
    confs, hosts_yaml = {}, ""
    for host in fleet:
        conf = tmp_path / host.name / "redis.conf"
        conf.parent.mkdir()
        conf.write_text(BROKEN)
        os.chown(conf, nobody.pw_uid, nobody.pw_gid)
        conf.chmod(0o640)
        confs[host.name] = conf
        hosts_yaml += (
            f"        {host.name}:\n          ansible_host: {host.address}\n"
            f"          ansible_port: {host.port}\n          redis_conf: {conf}\n"
        )
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        "all:\n  vars:\n"
        f"    ansible_user: {test_user.name}\n"
        f"    ansible_ssh_private_key_file: {ssh_session.client_key}\n"
        f"    ansible_become_password: {test_user.password}\n"
        "  children:\n    redis:\n      hosts:\n" + hosts_yaml
    )
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("".join(h.known_hosts_line + "\n" for h in fleet))
    playbook = tmp_path / "fix-bind.yaml"
    playbook.write_text(PLAYBOOK)
    return Site(tmp_path, inventory, known_hosts, playbook, confs)


def redmedic(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [REDMEDIC, *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def run_shards(site: Site, *command: str, count: int = SHARDS) -> list[tuple[int, str]]:
    """`count` jobs of `redmedic COMMAND... --shard K/count`, started together; each writes
    shard-K.jsonl and audit-K.jsonl.

    Returns each job's exit code and stderr. A job still running after the bound is
    killed by its PID (ours), so nothing outlives the test.
    """
    jobs = []
    try:
        for k in range(1, count + 1):
            argv = [
                REDMEDIC, *command, *site.fleet_flags(), "--shard", f"{k}/{count}",
                "--output", "json", "--audit-log", str(site.dir / f"audit-{k}.jsonl"),
            ]  # fmt: skip
            with (
                open(site.dir / f"shard-{k}.jsonl", "w") as out,
                open(site.dir / f"shard-{k}.err", "w") as err,
            ):
                jobs.append(
                    subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
                )
        codes = [job.wait(timeout=300) for job in jobs]
    finally:
        for job in jobs:
            if job.poll() is None:
                job.kill()
                job.wait()
    return [(code, (site.dir / f"shard-{k}.err").read_text()) for k, code in enumerate(codes, 1)]


def events(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def trouble(output: str) -> list[str]:
    """The messages of the hosts that did not end well, for assertion messages."""
    finished = [json.loads(line) for line in output.splitlines() if '"host_finished"' in line]
    return [f"{e['host']}: {e['message']}" for e in finished if e["status"] not in _WELL]


_WELL = ("ok", "changed", "would_change")


def test_four_shards_fix_every_host_once_and_make_one_report(site: Site) -> None:
    jobs = run_shards(site, "run", str(site.playbook))

    fleet = sorted(site.confs)
    for k, (code, err) in enumerate(jobs, 1):
        assert code == 0, (err, trouble((site.dir / f"shard-{k}.jsonl").read_text()))
        assert f"shard {k}/{SHARDS}: " in err and f"of the {len(fleet)} selected hosts" in err
    # Each job ran its own hosts; together they are the fleet, no host twice.
    started = [events(site.dir / f"shard-{k}.jsonl")[0] for k in range(1, SHARDS + 1)]
    picked = [name for shard in started for name in shard["hosts"]]
    assert sorted(picked) == fleet
    assert all(conf.read_text() == FIXED for conf in site.confs.values())

    # One report from the four outputs, the same when they were concatenated first.
    expected = {name: {"status": "changed", "changed": 1, "failed": 0} for name in fleet}
    outputs = [str(site.dir / f"shard-{k}.jsonl") for k in range(1, SHARDS + 1)]
    merged = redmedic("report", *outputs, "--output", "json")
    assert merged.returncode == 0, merged.stderr
    assert json.loads(merged.stdout)["hosts"] == expected
    together = site.dir / "run.jsonl"
    together.write_text("".join(Path(p).read_text() for p in outputs))
    assert redmedic("report", str(together), "--output", "json").stdout == merged.stdout
    text = redmedic("report", str(together))
    assert text.stdout.startswith(f"Summary: {len(fleet)} host(s) — {len(fleet)} changed\n")

    # The audit logs: concatenated, one log with four runs, each host's change once.
    audit = site.dir / "audit.jsonl"
    logs = [site.dir / f"audit-{k}.jsonl" for k in range(1, SHARDS + 1)]
    audit.write_text("".join(log.read_text() for log in logs))
    records = events(audit)
    run_ids = list(dict.fromkeys(str(r["run_id"]) for r in records))
    assert len(run_ids) == SHARDS
    applied = sorted(str(r["host"]) for r in records if r["event"] == "change_applied")
    assert applied == fleet
    from_logs = redmedic("report", *map(str, logs), "--output", "json")
    assert from_logs.stdout == merged.stdout

    # Rolling back one shard's run from the combined log undoes exactly its hosts.
    second = started[1]["hosts"]
    undone = redmedic(
        "rollback", started[1]["run_id"], *site.fleet_flags(), "--audit-log", str(audit)
    )
    assert undone.returncode == 0, undone.stdout[-3000:] + undone.stderr
    for name, conf in site.confs.items():
        assert conf.read_text() == (BROKEN if name in second else FIXED), name


def test_a_reviewed_plan_of_the_fleet_is_applied_by_two_machines(site: Site) -> None:
    # Given one plan of the whole fleet, when two machines apply it with --shard K/2, then
    # each applies its own hosts' changes, and every host is changed exactly once.
    plan = site.dir / "plan.json"
    checked = redmedic(
        "run", str(site.playbook), *site.fleet_flags(), "--check", "--plan-out", str(plan),
        "--output", "json",
    )  # fmt: skip
    assert checked.returncode == 0, (checked.stderr, trouble(checked.stdout))

    jobs = run_shards(site, "apply", str(plan), count=2)

    for k, (code, err) in enumerate(jobs, 1):
        assert code == 0, (err, trouble((site.dir / f"shard-{k}.jsonl").read_text()))
    applied = [
        str(r["host"])
        for k in (1, 2)
        for r in events(site.dir / f"audit-{k}.jsonl")
        if r["event"] == "change_applied"
    ]
    assert sorted(applied) == sorted(site.confs)
    assert all(conf.read_text() == FIXED for conf in site.confs.values())


def test_one_run_is_rolled_back_by_two_machines(site: Site) -> None:
    # Given one run over the whole fleet, when two machines roll it back with --shard K/2,
    # then each undoes its own hosts, and every host is undone exactly once.
    audit = site.dir / "audit.jsonl"
    fixed = redmedic(
        "run", str(site.playbook), *site.fleet_flags(), "--output", "json",
        "--audit-log", str(audit),
    )  # fmt: skip
    assert fixed.returncode == 0, (fixed.stderr, trouble(fixed.stdout))
    run_id = json.loads(fixed.stdout.splitlines()[0])["run_id"]
    for k in (1, 2):  # each machine rolls back from its copy of the run's audit log
        (site.dir / f"audit-{k}.jsonl").write_text(audit.read_text())

    jobs = run_shards(site, "rollback", run_id, count=2)

    for k, (code, err) in enumerate(jobs, 1):
        assert code == 0, (err, trouble((site.dir / f"shard-{k}.jsonl").read_text()))
    undone = [
        host
        for k in (1, 2)
        for host, result in events(site.dir / f"shard-{k}.jsonl")[-1]["hosts"].items()
        if result["status"] == "ok"
    ]
    assert sorted(undone) == sorted(site.confs)
    assert all(conf.read_text() == BROKEN for conf in site.confs.values())
