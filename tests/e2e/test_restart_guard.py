"""A restart that the fix cannot avoid is guarded: saved first, refused when it would lose data.

User story: given a Debian 12 host whose open-file limit caps maxclients (a LimitNOFILE=40
drop-in: raising a running process's hard limit needs CAP_SYS_RESOURCE, which root here
lacks, so the fix is a drop-in and a restart), when I run the shipped
`connection-refused.yaml`:

- with RDB on and keys written after the last save, `--check` shows what the restart costs
  (clients dropped, keys, "BGSAVE first"); `--yes` saves first (the Redis log shows a
  completed background save before the shutdown), restarts, and every key is back;
- with persistence off (`save ""`, `appendonly no`, in redis.conf and running) and keys
  present, `--check` and `--yes` both stop the host with one line naming
  `redis_allow_data_loss`, and nothing changed: redis.conf byte for byte, no drop-in, the
  same redis-server PID, the keys still there; with `-e redis_allow_data_loss=true` it
  restarts (and the keys are gone, as allowed).

And on Debian 11 (Redis 6.0.16, which cannot change `bind` live), the shipped playbook's
bind fix restarts under the same guard: with RDB the keys are saved first and all come
back, with persistence off and keys the host stops and nothing changes.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from redmedic.cli import main
from tests.support.nspawn import SystemdHost

PLAYBOOK = Path(__file__).resolve().parents[2] / "playbooks" / "connection-refused.yaml"
PASSWORD = "E2e-guard-s3cret"
CONF = "/etc/redis/redis.conf"
DROPINS = "/etc/systemd/system/redis-server.service.d"
KEYS = 200
RESTART = "systemctl restart redis-server"
# Reachable with a password, but only 40 open files: maxclients 8 — the nofile-limit cause.
NOFILE_40 = (
    f"printf 'bind 0.0.0.0 -::*\\nrequirepass {PASSWORD}\\n' >> {CONF}"
    f" && mkdir -p {DROPINS} && printf '[Service]\\nLimitNOFILE=40\\n' > {DROPINS}/nofile.conf"
    " && systemctl daemon-reload"
)
PERSISTENCE_OFF = f"printf 'save \"\"\\nappendonly no\\n' >> {CONF}"
CLI = f"REDISCLI_AUTH={PASSWORD} redis-cli"
WRITE_KEYS = (
    f"{CLI} EVAL \"for i=1,{KEYS} do redis.call('SET', 'guard:'..i, 'v') end\" 0 >/dev/null"
)
COUNT_KEYS = f"{CLI} EVAL \"return #redis.call('KEYS', 'guard:*')\" 0"
STATE = (
    f"sha256sum {CONF}; echo $(ls {DROPINS}); systemctl show -p MainPID --value redis-server; "
    f"{COUNT_KEYS}"
)


def redmedic(
    tmp_path: Path,
    host: SystemdHost,
    capsys: pytest.CaptureFixture[str],
    *flags: str,
    host_vars: str = "",
) -> tuple[int, list[dict[str, Any]]]:
    """The shipped playbook on this host, as the CLI runs it: exit code and JSON events."""
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        f"all:\n  hosts:\n    {host.name}:\n      ansible_host: {host.address}\n"
        f"      ansible_user: root\n      ansible_ssh_private_key_file: {host.private_key}\n"
        f"      redis_password: {PASSWORD}\n{host_vars}"
    )
    code = main(["run", str(PLAYBOOK), "-i", str(inventory), "--known-hosts",
                 str(host.known_hosts), "--output", "json",
                 "--audit-log", str(tmp_path / "audit.jsonl"), *flags])  # fmt: skip
    out = capsys.readouterr().out
    assert PASSWORD not in out
    return code, [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def of(events: list[dict[str, Any]], kind: str, step: str | None = None) -> list[dict[str, Any]]:
    return [e for e in events if e["event"] == kind and (step is None or e.get("step") == step)]


def finished(events: list[dict[str, Any]]) -> dict[str, Any]:
    return of(events, "host_finished")[-1]


def saved_before_the_shutdown(host: SystemdHost, log_mark: str) -> bool:
    """The Redis log since `log_mark` (a line count) has a completed BGSAVE before SIGTERM."""
    log = host.ssh(f"tail -n +{int(log_mark) + 1} /var/log/redis/redis-server.log").stdout
    saved = log.find("Background saving terminated with success")
    return 0 <= saved < log.find("Received SIGTERM")


def log_lines(host: SystemdHost) -> str:
    return host.ssh("wc -l < /var/log/redis/redis-server.log", check=True).stdout.strip()


def state(host: SystemdHost) -> dict[str, str]:
    lines = host.ssh(STATE, check=True).stdout.split("\n")
    return {"conf": lines[0].split()[0], "dropins": lines[1], "pid": lines[2], "keys": lines[3]}


def test_with_rdb_the_restart_saves_first_and_every_key_comes_back(
    systemd_host: SystemdHost, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    host = systemd_host
    host.ssh(f"{NOFILE_40} && {RESTART} && {WRITE_KEYS}", check=True, timeout=120)
    persistence = host.ssh(f"{CLI} INFO persistence", check=True).stdout
    assert "rdb_changes_since_last_save:0" not in persistence  # written after the last save
    log_mark = log_lines(host)
    before = state(host)
    assert before["keys"] == str(KEYS)

    # --check: the restart is in the plan with its cost; nothing changes
    code, events = redmedic(tmp_path, host, capsys, "--check")
    assert code == 0, finished(events)
    restart = of(events, "change_planned", "restart redis")
    assert len(restart) == 1
    cost = restart[0]["description"].splitlines()[0]
    assert "restart redis-server.service" in cost, cost
    assert f"{KEYS} keys" in cost and "reloaded" in cost and "BGSAVE first" in cost, cost
    assert "connected client" in cost, cost
    assert state(host) == before

    # --yes: saved first, restarted, every key back
    code, events = redmedic(tmp_path, host, capsys, "--yes")
    assert code == 0, finished(events)
    assert finished(events)["status"] == "changed"
    assert len(of(events, "change_planned", "restart redis")) == 1  # shown once
    after = state(host)
    assert after["pid"] != before["pid"]  # it did restart
    assert after["keys"] == str(KEYS)
    assert saved_before_the_shutdown(host, log_mark)


def test_with_persistence_off_the_restart_is_refused_before_anything_changes(
    systemd_host: SystemdHost, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    host = systemd_host
    host.ssh(f"{NOFILE_40} && {PERSISTENCE_OFF} && {RESTART} && {WRITE_KEYS}", check=True)
    assert host.ssh(f"{CLI} CONFIG GET save", check=True).stdout.split("\n")[1] == ""
    before = state(host)
    assert before["keys"] == str(KEYS)

    for flags in (("--check",), ("--yes",)):
        code, events = redmedic(tmp_path, host, capsys, *flags)
        why = finished(events)["message"]
        assert code != 0 and finished(events)["status"] == "failed", why
        assert "\n" not in why and "redis_allow_data_loss=true" in why, why
        assert f"lose all {KEYS} keys" in why and "persistence is off" in why, why
        assert not of(events, "change_applied")
        assert state(host) == before  # redis.conf, drop-ins, PID, keys: all as they were

    # allowed by name: the restart happens, and the keys are gone as accepted
    code, events = redmedic(tmp_path, host, capsys, "--yes", "-e", "redis_allow_data_loss=true")
    assert code == 0, finished(events)
    restart = of(events, "change_planned", "restart redis")[0]["description"].splitlines()[0]
    assert f"{KEYS} keys" in restart and "LOST" in restart and "persistence OFF" in restart
    after = state(host)
    assert after["pid"] != before["pid"]
    assert after["keys"] == "0"
    assert "zz-redmedic-nofile.conf" in after["dropins"]


class _Answers(io.StringIO):
    """A terminal on stdin that answers the gate's questions from a script."""

    def isatty(self) -> bool:
        return True


REPLICA = (
    f"redis-server --port 6380 --replicaof 127.0.0.1 6379 --masterauth {PASSWORD}"
    " --save '' --appendonly no --dir /tmp --daemonize yes --pidfile /tmp/replica.pid"
)


def test_a_primary_with_a_connected_replica_asks_its_own_question_before_any_change(
    systemd_host: SystemdHost,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given a primary whose fix needs a restart and a replica connected to it, when I run
    # the playbook at a terminal and answer "no" to the restart's own question, then the
    # question names the replica, and nothing changed: the same PID, redis.conf, no drop-in.
    host = systemd_host
    host.ssh(f"{NOFILE_40} && {RESTART} && {WRITE_KEYS} && {REPLICA}", check=True, timeout=120)
    linked = f"{CLI} INFO replication | grep -q '^connected_slaves:1'"
    host.ssh(f"for i in $(seq 240); do {linked} && exit 0; sleep 0.5; done; exit 1", check=True)
    before = state(host)

    code, events = redmedic(tmp_path, host, capsys, "--check")
    (restart,) = of(events, "change_planned", "restart redis")
    assert "primary with 1 connected replicas" in restart["description"].splitlines()[0]

    inventory = tmp_path / "inventory.yaml"  # written by the --check run above
    monkeypatch.setattr("sys.stdin", _Answers("n\n" * 10))
    code = main(["run", str(PLAYBOOK), "-i", str(inventory), "--known-hosts",
                 str(host.known_hosts), "--audit-log", str(tmp_path / "audit.jsonl")])  # fmt: skip
    out = capsys.readouterr().out
    assert "Restart a primary with 1 connected replicas (127.0.0.1:6380)" in out, out
    assert code != 0
    assert state(host) == before


def test_on_redis_6_0_the_bind_fix_restarts_after_saving_and_every_key_comes_back(
    bullseye_host: SystemdHost, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    host = bullseye_host
    host.ssh(WRITE_KEYS, check=True)  # Debian's loopback-only default, RDB save points
    log_mark = log_lines(host)
    before = state(host)
    assert before["keys"] == str(KEYS)

    code, events = redmedic(tmp_path, host, capsys, "--yes")
    assert code == 0, finished(events)
    # The shipped default `bind` in the form Redis 6 reads (7.0's `-::*` would stop it).
    (bind,) = of(events, "change_planned", "Listen on the addresses remote clients use")
    assert "+bind 0.0.0.0\n" in bind["diff"]
    assert "needs a restart: Redis 6.0.16 cannot change `bind`" in bind["description"]
    restart = of(events, "change_planned", "restart redis")
    assert len(restart) == 1
    assert f"{KEYS} keys" in restart[0]["description"].splitlines()[0]
    assert "BGSAVE first" in restart[0]["description"].splitlines()[0]
    after = state(host)
    assert after["pid"] != before["pid"] and after["keys"] == str(KEYS)
    assert saved_before_the_shutdown(host, log_mark)


def test_on_redis_6_0_the_bind_fix_is_refused_when_the_restart_would_lose_the_keys(
    bullseye_host: SystemdHost, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    host = bullseye_host
    host.ssh(f"{PERSISTENCE_OFF} && {RESTART} && {WRITE_KEYS}", check=True)
    before = state(host)
    assert before["keys"] == str(KEYS)

    code, events = redmedic(tmp_path, host, capsys, "--yes")
    why = finished(events)["message"]
    assert code != 0 and "redis_allow_data_loss=true" in why and "\n" not in why, why
    assert not of(events, "change_applied")
    assert state(host) == before
