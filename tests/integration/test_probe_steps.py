"""`redis_probe` and `tcp_probe` from both vantage points, through a real sshd.

The simulated host is an sshd on its own loopback address (127.0.1.N); its Redis is bound
to 127.0.0.1 only. So, as on a real server with `bind 127.0.0.1`, the control machine is
refused at the host's address while the host itself (through the SSH tunnel) gets PONG:
the comparison that tells bind/firewall from a dead server. Each test is one thing an
operator sees when running a playbook; the pure rules behind them are tested at the end.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from redmedic.cli import main
from redmedic.connection import ConnectOptions, LocalConnection, connect
from redmedic.model.inventory import Host
from redmedic.redis.probes.outcome import ProbeOutcome, ProbeResult
from redmedic.steps.probe import (
    RedisProbe,
    RedisProbeArgs,
    classify_host_connect,
    explain_tunnel_failure,
    findings_for,
    host_connect_script,
    probe_result,
    probed,
)
from redmedic.testing import step_context
from tests.integration.test_probes import accepted, client, fill_past_maxmemory
from tests.support.loopback import LoginUser, SshdHost, SshSession
from tests.support.redis_server import RedisServer, free_port, running_redis

pytestmark = pytest.mark.integration

PASSWORD = "Pr0be-step-s3cret"


@pytest.fixture
def play(
    tmp_path: Path,
    sshd: SshdHost,
    ssh_session: SshSession,
    test_user: LoginUser,
    known_hosts_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> Any:
    """Run a playbook (its steps given as YAML) against the simulated SSH host."""
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        f"all:\n  hosts:\n    {sshd.name}:\n      ansible_host: {sshd.address}\n"
        f"      ansible_port: {sshd.port}\n      ansible_user: {test_user.name}\n"
        f"      ansible_ssh_private_key_file: {ssh_session.client_key}\n"
        f"      redis_password: {PASSWORD}\n"
    )

    def run(steps: str, *flags: str) -> tuple[int, list[dict[str, Any]]]:
        playbook = tmp_path / "playbook.yaml"
        playbook.write_text(f"name: probe\nhosts: all\n{steps}")
        argv = ["run", str(playbook), "-i", str(inventory), "--known-hosts",
                str(known_hosts_file), "--output", "json", *(flags or ["--check"])]  # fmt: skip
        code = main(argv)
        out = capsys.readouterr().out
        return code, [json.loads(line) for line in out.splitlines()]

    return run


def output_of(events: list[dict[str, Any]]) -> list[str]:
    """The probe step's stdout lines: one per vantage."""
    done = [e for e in events if e["event"] == "step_done"]
    return str(done[0]["output"]).splitlines()


def causes(events: list[dict[str, Any]]) -> list[str]:
    return [e["cause"] for e in events if e["event"] == "finding_reported"]


def diagnose(step: str) -> str:
    return f"diagnose:\n  - name: probe\n    {step}\n    register: p\n"


# -- the vantage comparison -----------------------------------------------------------------


def test_redis_bound_to_loopback_answers_on_the_host_and_is_refused_from_here(
    play: Any, sshd: SshdHost, redis_on_loopback: RedisServer
) -> None:
    code, events = play(diagnose(f"redis_probe: {{port: {redis_on_loopback.port}}}"))
    assert code == 0, events  # a diagnose step records; it does not fail the host
    control, host = output_of(events)
    assert control.startswith(f"control {sshd.address}:{redis_on_loopback.port} refused: ")
    assert "Connection refused" in control
    assert host == f"host 127.0.0.1:{redis_on_loopback.port} ok: PONG"
    assert causes(events) == ["bind"]


def test_a_dead_server_is_refused_from_both_vantages(play: Any, sshd: SshdHost) -> None:
    port = free_port()
    code, events = play(diagnose(f"redis_probe: {{port: {port}}}"))
    assert code == 0, events
    control, host = output_of(events)
    assert control.startswith(f"control {sshd.address}:{port} refused: ")
    refused = f"TCP connect to 127.0.0.1:{port} on the host: Connection refused"
    assert host == f"host 127.0.0.1:{port} refused: {refused}"
    assert causes(events) == ["not-running"]


def test_tcp_probe_tells_the_same_story_one_layer_down(
    play: Any, sshd: SshdHost, redis_on_loopback: RedisServer
) -> None:
    dead = free_port()
    steps = (
        "diagnose:\n"
        f"  - tcp_probe: {{port: {redis_on_loopback.port}}}\n"
        f"  - tcp_probe: {{port: {dead}}}\n"
    )
    code, events = play(steps)
    assert code == 0, events
    live, gone = [str(e["output"]).splitlines() for e in events if e["event"] == "step_done"]
    assert live[0].startswith(f"control {sshd.address}:{redis_on_loopback.port} refused")
    assert live[1].startswith(f"host 127.0.0.1:{redis_on_loopback.port} ok")
    assert [line.split(" ")[2] for line in gone] == ["refused:", "refused:"]
    assert causes(events) == ["bind", "not-running"]


# -- what the server says --------------------------------------------------------------------


def test_a_password_protected_server_needs_the_password_which_never_shows(play: Any) -> None:
    with running_redis("--requirepass", PASSWORD) as server:
        without = diagnose(f"redis_probe: {{port: {server.port}, vantage: [host]}}")
        code, events = play(without)
        assert output_of(events) == [
            f"host 127.0.0.1:{server.port} auth-required: NOAUTH Authentication required."
        ]
        assert causes(events) == ["client"]
        step = f"redis_probe: {{port: {server.port}, password: '{{{{ redis_password }}}}'}}"
        code, events = play(
            diagnose(step) + "verify:\n  - assert: {that: [p.host.outcome == 'ok']}\n"
        )
    assert code == 0, events
    assert output_of(events)[1] == f"host 127.0.0.1:{server.port} ok: PONG"
    assert PASSWORD not in json.dumps(events)


def test_a_full_server_answers_ping_but_the_write_probe_finds_oom(play: Any) -> None:
    with running_redis("--maxmemory", "1mb", "--maxmemory-policy", "noeviction") as server:
        fill_past_maxmemory(server)
        step = f"redis_probe: {{port: {server.port}, write: true, vantage: [host]}}"
        code, events = play(diagnose(step))
    assert code == 0, events
    (line,) = output_of(events)
    assert line.startswith(f"host 127.0.0.1:{server.port} oom: writes refused: OOM command")
    assert causes(events) == ["oom"]


def test_a_probe_through_the_tunnel_waits_for_two_round_trips_on_one_connection(
    ssh_host: Host, ssh_options: ConnectOptions
) -> None:
    """Given a Redis without a password, and an inventory that gives one, when the host
    probe writes, then the server sees one client and the SSH connection one tunnel.

    This used to be the costliest probe: AUTH refused, then a second tunnel and client to
    retry without the password (8 turns, 6 waited for). Now the turns on the SSH socket
    are the tunnel's open and the pipelined AUTH, PING, SET, DEL (both waited for), and
    the tunnel's close, which sshd answers while the run goes on (so it is waited for
    here, bounded, before counting)."""
    with (
        running_redis() as server,
        client(server) as check,
        connect(ssh_host, ssh_options) as conn,
    ):
        args = RedisProbeArgs(port=server.port, password=PASSWORD, write=True, vantage=["host"])
        before, channels = accepted(check), conn.traffic.channels
        conn.traffic.phase = "probe"
        found = RedisProbe().diagnose(args, step_context(conn))
        deadline = time.monotonic() + 10.0
        while conn.traffic.trips.get("probe", 0) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        turns, opened = conn.traffic.trips["probe"], conn.traffic.channels - channels
        clients = accepted(check) - before

    seen = found.results["host"]
    assert seen.outcome is ProbeOutcome.OK, seen
    assert seen.detail == (
        "PONG; probe key written and deleted; "
        "the server has no password configured (AUTH not needed)"
    )
    assert (clients, opened, turns) == (1, 1, 3)


def test_a_probe_in_verify_fails_the_host_with_rc_1(play: Any) -> None:
    steps = (
        "fix:\n  - shell: 'true'\n"
        f"verify:\n  - name: redis answers\n    redis_probe: {{port: {free_port()}, "
        "vantage: [host], timeout: 1}\n"
    )
    code, events = play(steps, "--yes")
    assert code == 1
    finished = next(e for e in events if e["event"] == "host_finished")
    assert finished["status"] == "failed"
    assert "verify 'redis answers' failed: exit code 1, expected 0" in finished["message"]


# -- the rules behind them (pure) -------------------------------------------------------------


def test_the_on_host_connect_is_classified_from_real_output() -> None:
    """The script runs for real here (bash present); the texts are what bash prints."""
    with running_redis() as server, LocalConnection(Host("box", "127.0.0.1")) as conn:
        ok = conn.run(host_connect_script(server.port, 1.0)).stdout
        refused = conn.run(host_connect_script(free_port(), 1.0)).stdout
    assert classify_host_connect(ok, 1, 1.0)[0] is ProbeOutcome.OK
    assert classify_host_connect(refused, 1, 1.0)[0] is ProbeOutcome.REFUSED
    assert classify_host_connect("redmedic:rc 124\n\n", 1, 1.0)[0] is ProbeOutcome.TIMEOUT
    nc = "redmedic:rc 1\nnc: connect to 127.0.0.1 port 1 (tcp) failed: Connection refused\n"
    assert classify_host_connect(nc, 1, 1.0)[0] is ProbeOutcome.REFUSED
    assert classify_host_connect("redmedic:no-tool\n", 1, 1.0)[0] is ProbeOutcome.ERROR


def result(outcome: ProbeOutcome, detail: str = "d", address: str = "10.0.0.5") -> ProbeResult:
    return ProbeResult(outcome, detail, address, 6379, 1.0)


@pytest.mark.parametrize(
    ("control", "host", "cause"),
    [
        (ProbeOutcome.REFUSED, ProbeOutcome.OK, "bind"),
        (ProbeOutcome.REFUSED, ProbeOutcome.REFUSED, "not-running"),
        (ProbeOutcome.OK, ProbeOutcome.REFUSED, "bind"),
        (ProbeOutcome.NO_ROUTE, ProbeOutcome.OK, "firewall-firewalld"),
        (ProbeOutcome.TIMEOUT, ProbeOutcome.AUTH_REQUIRED, "network"),
        (ProbeOutcome.PROTECTED_MODE, ProbeOutcome.OK, "protected-mode"),
        (ProbeOutcome.MAX_CLIENTS, ProbeOutcome.MAX_CLIENTS, "max-clients"),
    ],
)
def test_comparing_vantages_names_the_cause(
    control: ProbeOutcome, host: ProbeOutcome, cause: str
) -> None:
    found = findings_for({"control": result(control), "host": result(host, address="127.0.0.1")})
    assert cause in [f.cause for f in found]
    assert len({f.cause for f in found}) == len(found)


def test_facts_rc_and_stdout_follow_the_first_failing_vantage() -> None:
    step = probe_result(
        probed(
            {
                "control": result(ProbeOutcome.REFUSED, "no s3cret here"),
                "host": result(ProbeOutcome.OK),
            },
            "s3cret",
        )
    )
    assert step.rc == 1 and step.facts["ok"] is False and step.facts["outcome"] == "refused"
    assert step.facts["control"] == {
        "outcome": "refused",
        "detail": "no *** here",
        "address": "10.0.0.5",
        "port": 6379,
        "elapsed_ms": 1.0,
    }
    assert step.stdout == "control 10.0.0.5:6379 refused: no *** here\nhost 10.0.0.5:6379 ok: d\n"
    assert probe_result(probed({"host": result(ProbeOutcome.OK)})).rc == 0


def test_a_tunnel_closed_while_the_port_accepts_blames_forwarding() -> None:
    for said in (
        "server closed the connection without a reply: likely protected mode ...",
        "server reset the connection after accepting it: ... Connection reset by peer",
    ):
        seen = explain_tunnel_failure(result(ProbeOutcome.ERROR, said), result(ProbeOutcome.OK))
        assert seen.outcome is ProbeOutcome.ERROR and "AllowTcpForwarding" in seen.detail
    closed = result(ProbeOutcome.ERROR, "server reset the connection after accepting it")
    seen = explain_tunnel_failure(closed, result(ProbeOutcome.REFUSED, "refused on host"))
    assert (seen.outcome, seen.detail) == (ProbeOutcome.REFUSED, "refused on host")
    slow = result(ProbeOutcome.TIMEOUT, "connected, but the server did not reply in time")
    assert explain_tunnel_failure(slow, result(ProbeOutcome.OK)) == slow
