"""Triage as evidence in, causes out, from outputs captured on real Debian 12 hosts.

User story: given what `redis_facts` read on a host, what the probes saw from the control
node and from the host itself, and what the logs say, when the triage runs, then it names
each cause with the facts behind it — and names nothing on a healthy host.

Every section text below was printed by the `redis_facts` script on a systemd-nspawn
Debian 12 host (redis-server 7.0.15, Debian's redis.conf and unit) with the fault named in
the test injected for real; probe results are what `redis_probe` registered there. Long
outputs are cut to the lines that matter (INFO to the fields the triage reads, redis.conf
to its active lines). One value is edited on purpose: the test VM's kernel has
vm.overcommit_memory = 0 and nspawn hosts cannot change it, so "healthy" hosts get the
`sysctl` line of a host where it is 1.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from redmedic.model.plan import Finding, StepResult
from redmedic.redis.diagnosis import Probes, Targets, Vantage, diagnose, probes_from
from redmedic.redis.logs import LogHit, hits_from_logs
from redmedic.redis.probes.outcome import ProbeOutcome
from redmedic.safety.secrets import MASK
from redmedic.steps.redis_facts import parse_facts
from redmedic.steps.triage import RedisTriage, TriageArgs
from redmedic.testing import step_context

PASSWORD = "Hunter2-redmedic-pw"

# -- real section texts ------------------------------------------------------------------

DEBIAN_CONF = """\
bind 127.0.0.1 -::1
protected-mode yes
port 6379
tcp-backlog 511
timeout 0
daemonize yes
pidfile /run/redis/redis-server.pid
loglevel notice
logfile /var/log/redis/redis-server.log
databases 16
dir /var/lib/redis
# requirepass foobared
# maxclients 10000
"""
OPEN_CONF = DEBIAN_CONF + f"bind 0.0.0.0 -::*\nrequirepass {PASSWORD}\n"

EXEC_START = (
    "ExecStart={ path=/usr/bin/redis-server ; argv[]=/usr/bin/redis-server "
    "/etc/redis/redis.conf --supervised systemd --daemonize no ; ignore_errors=no ; "
    "start_time=[Wed 2026-11-25 14:54:36 UTC] ; stop_time=[n/a] ; pid=33 ; code=(null) ; "
    "status=0/0 }"
)
UNIT_RUNNING = f"""\
MainPID=33
Result=success
NRestarts=0
{EXEC_START}
Id=redis-server.service
LoadState=loaded
ActiveState=active
SubState=running
UnitFileState=enabled"""
UNIT_STOPPED_DISABLED = f"""\
MainPID=0
Result=success
NRestarts=0
{EXEC_START}
Id=redis-server.service
LoadState=loaded
ActiveState=inactive
SubState=dead
UnitFileState=disabled"""
UNIT_FAILED = f"""\
MainPID=0
Result=exit-code
NRestarts=5
{EXEC_START}
Id=redis-server.service
LoadState=loaded
ActiveState=failed
SubState=failed
UnitFileState=enabled"""

LISTEN_LOOPBACK = """\
LISTEN 0      511    127.0.0.1:6379 0.0.0.0:* users:(("redis-server",pid=33,fd=6))
LISTEN 0      128      0.0.0.0:22   0.0.0.0:* users:(("sshd",pid=37,fd=3))        
LISTEN 0      511        [::1]:6379    [::]:* users:(("redis-server",pid=33,fd=7))
LISTEN 0      128         [::]:22      [::]:* users:(("sshd",pid=37,fd=4))        """  # noqa: W291
LISTEN_ALL = """\
LISTEN 0      128    0.0.0.0:22   0.0.0.0:* users:(("sshd",pid=37,fd=3))        
LISTEN 0      511    0.0.0.0:6379 0.0.0.0:* users:(("redis-server",pid=33,fd=6))
LISTEN 0      128       [::]:22      [::]:* users:(("sshd",pid=37,fd=4))        
LISTEN 0      511       [::]:6379    [::]:* users:(("redis-server",pid=33,fd=7))"""  # noqa: W291
LISTEN_6380 = """\
LISTEN 0      128      0.0.0.0:22   0.0.0.0:* users:(("sshd",pid=37,fd=3))        
LISTEN 0      511    127.0.0.1:6380 0.0.0.0:* users:(("redis-server",pid=33,fd=6))
LISTEN 0      511        [::1]:6380    [::]:* users:(("redis-server",pid=33,fd=7))
LISTEN 0      128         [::]:22      [::]:* users:(("sshd",pid=37,fd=4))        """  # noqa: W291
LISTEN_SSH_ONLY = """\
LISTEN 0      128    0.0.0.0:22 0.0.0.0:* users:(("sshd",pid=37,fd=3))
LISTEN 0      128       [::]:22    [::]:* users:(("sshd",pid=37,fd=4))"""
LISTEN_PORT_TAKEN = """\
LISTEN 0      128    127.0.0.1:6379 0.0.0.0:* users:(("python3",pid=91,fd=3))
LISTEN 0      128      0.0.0.0:22   0.0.0.0:* users:(("sshd",pid=37,fd=3))   
LISTEN 0      128         [::]:22      [::]:* users:(("sshd",pid=37,fd=4))   """  # noqa: W291

LIMITS_20000 = "Max open files            20000                20000                files     "
LIMITS_64 = "Max open files            64                   64                   files     "


def info(
    *,
    port: int = 6379,
    connected: int = 1,
    maxclients: int = 10000,
    used: int = 916896,
    overhead: int = 876288,
    maxmemory: int = 0,
    policy: str = "noeviction",
    rejected: int = 0,
    keyspace: str = "",
    version: str = "7.0.15",
) -> str:
    """INFO as redis-cli printed it (CRLF lines), cut to the fields the triage reads."""
    lines = [
        "# Server",
        f"redis_version:{version}",
        "process_id:33",
        f"tcp_port:{port}",
        "config_file:/etc/redis/redis.conf",
        "",
        "# Clients",
        f"connected_clients:{connected}",
        f"maxclients:{maxclients}",
        "blocked_clients:0",
        "",
        "# Memory",
        f"used_memory:{used}",
        f"used_memory_overhead:{overhead}",
        f"maxmemory:{maxmemory}",
        f"maxmemory_policy:{policy}",
        "",
        "# Stats",
        "total_connections_received:1",
        f"rejected_connections:{rejected}",
        "",
        "# Keyspace",
        *([keyspace] if keyspace else []),
    ]
    return "\r\n".join(lines) + "\r\n"


def live(**values: str) -> str:
    """CONFIG GET's alternating name/value lines."""
    wanted = {
        "tcp-backlog": "511",
        "bind": "127.0.0.1 -::1",
        "maxclients": "10000",
        "maxmemory": "0",
        "protected-mode": "yes",
        "port": "6379",
        "logfile": "/var/log/redis/redis-server.log",
        "maxmemory-policy": "noeviction",
        "unixsocket": "",
    }
    wanted.update({k.replace("_", "-"): v for k, v in values.items()})
    return "\n".join(f"{k}\n{v}" for k, v in wanted.items())


UFW_REJECT = """\
Status: active
Logging: on (low)
Default: deny (incoming), allow (outgoing), disabled (routed)
New profiles: skip

To                         Action      From
--                         ------      ----
22/tcp                     ALLOW IN    Anywhere                  
6379/tcp                   REJECT IN   Anywhere                  
22/tcp (v6)                ALLOW IN    Anywhere (v6)             
6379/tcp (v6)              REJECT IN   Anywhere (v6)             
"""  # noqa: W291
UFW_DENY = UFW_REJECT.replace("REJECT IN ", "DENY IN   ")
UFW_ALLOW = UFW_REJECT.replace("REJECT IN ", "ALLOW IN  ")
FIREWALLD_ZONE = """\
public
  target: default
  icmp-block-inversion: no
  interfaces: 
  sources: 
  services: dhcpv6-client ssh
  ports: 
  protocols: 
  forward: yes
  masquerade: no
  forward-ports: 
  source-ports: 
  icmp-blocks: 
  rich rules: """  # noqa: W291
FIREWALLD_SERVICES = """\
/usr/lib/firewalld/services/redis.xml:  <port protocol="tcp" port="6379"/>
/usr/lib/firewalld/services/vdsm.xml:  <port protocol="tcp" port="5900-6923"/> <!-- guest consoles -->"""  # noqa: E501

CHECK_SYSTEM = """\
[slow-clocksource]...OK
[xen-clocksource]...OK
[overcommit]...WARNING:
Memory overcommit must be enabled! Without it, a background save or replication may fail under low memory condition. Being disabled, it can can also cause failures without low memory condition, see https://github.com/jemalloc/jemalloc/issues/1328. To fix this issue add 'vm.overcommit_memory = 1' to /etc/sysctl.conf and then reboot or run the command 'sysctl vm.overcommit_memory=1' for this to take effect.
[THP]...OK"""  # noqa: E501
SYSCTL_OFF = "vm.overcommit_memory = 0\nnet.core.somaxconn = 4096"
SYSCTL_ON = "vm.overcommit_memory = 1\nnet.core.somaxconn = 4096"
FREE = """\
               total        used        free      shared  buff/cache   available
Mem:     25276514304   866463744 23785078784    39317504   964632576 24410050560
Swap:              0           0           0"""

LOG_START = """\
33:C 25 Nov 2026 14:54:38.033 # oO0OoO0OoO0Oo Redis is starting oO0OoO0OoO0Oo
33:C 25 Nov 2026 14:54:38.033 # Redis version=7.0.15, bits=64, commit=00000000, modified=0, pid=33, just started
33:C 25 Nov 2026 14:54:38.033 # Configuration loaded
33:M 25 Nov 2026 14:54:38.034 * Running mode=standalone, port=6379.
33:M 25 Nov 2026 14:54:38.034 # Server initialized
33:M 25 Nov 2026 14:54:38.034 * Ready to accept connections"""  # noqa: E501
LOG_OVERCOMMIT = (
    "33:M 25 Nov 2026 14:54:38.034 # WARNING Memory overcommit must be enabled! Without it, "
    "a background save or replication may fail under low memory condition."
)
LOG_NOFILE = """\
100:C 25 Nov 2026 14:54:50.386 # oO0OoO0OoO0Oo Redis is starting oO0OoO0OoO0Oo
100:C 25 Nov 2026 14:54:50.386 # Configuration loaded
100:M 25 Nov 2026 14:54:50.387 # You requested maxclients of 10000 requiring at least 10032 max file descriptors.
100:M 25 Nov 2026 14:54:50.387 # Server can't set maximum open files to 10032 because of OS error: Operation not permitted.
100:M 25 Nov 2026 14:54:50.387 # Current maximum open files is 64. maxclients has been reduced to 32 to compensate for low ulimit. If you need higher maxclients increase 'ulimit -n'.
100:M 25 Nov 2026 14:54:50.388 * Ready to accept connections"""  # noqa: E501
LOG_PORT_IN_USE = """\
118:C 25 Nov 2026 14:55:00.011 # oO0OoO0OoO0Oo Redis is starting oO0OoO0OoO0Oo
118:M 25 Nov 2026 14:55:00.012 # Warning: Could not create server TCP listening socket 127.0.0.1:6379: bind: Address already in use
118:M 25 Nov 2026 14:55:00.012 # Failed listening on port 6379 (TCP), aborting."""  # noqa: E501
JOURNAL_FAILED = """\
Nov 25 14:55:00 rmt0-012 systemd[1]: redis-server.service: Main process exited, code=exited, status=1/FAILURE
Nov 25 14:55:00 rmt0-012 systemd[1]: redis-server.service: Failed with result 'exit-code'.
Nov 25 14:55:00 rmt0-012 systemd[1]: redis-server.service: Start request repeated too quickly."""  # noqa: E501

# Debian's default: bind 127.0.0.1 -::1, no password, unit enabled and running.
DEBIAN_DEFAULT: dict[str, str] = {
    "init": "systemd",
    "unit": UNIT_RUNNING,
    "listen": LISTEN_LOOPBACK,
    "pid": "33 unit",
    "cmdline": "/usr/bin/redis-server 127.0.0.1:6379",
    "limits": LIMITS_20000,
    "cli-target": "127.0.0.1 6379",
    "info": info(),
    "live-config": live(),
    "config-path": "info read\n/etc/redis/redis.conf",
    "config": DEBIAN_CONF,
    "check-system": CHECK_SYSTEM,
    "ufw": "Status: inactive",
    "firewalld": "not running",
    "firewalld-zone": "",
    "firewalld-services": "",
    "free": FREE,
    "sysctl": SYSCTL_OFF,
    "thp": "always [madvise] never",
    "log-path": "/var/log/redis/redis-server.log",
    "log": LOG_START,
    "journal": "",
    "kernel": "",
}
# Listening everywhere with a password, overcommit on: nothing to fix.
HEALTHY: dict[str, str] = {
    **DEBIAN_DEFAULT,
    "listen": LISTEN_ALL,
    "cmdline": "/usr/bin/redis-server 0.0.0.0:6379",
    "live-config": live(bind="0.0.0.0 -::*"),
    "config": OPEN_CONF,
    "check-system": CHECK_SYSTEM.replace("[overcommit]...WARNING:", "[overcommit]...OK").split(
        "\nMemory overcommit"
    )[0]
    + "\n[THP]...OK",
    "sysctl": SYSCTL_ON,
}


def facts(sections: dict[str, str], port: int = 6379) -> dict[str, Any]:
    return parse_facts(sections, port)[0]


def probe(control: tuple[str, str] | None, host: tuple[str, str] | None = ("ok", "PONG")) -> Any:
    """A registered `redis_probe` result, as the step registers it."""
    registered: dict[str, Any] = {}
    if control is not None:
        registered["control"] = {
            "outcome": control[0],
            "detail": control[1],
            "address": "10.213.57.2",
            "port": 6379,
        }
    if host is not None:
        registered["host"] = {
            "outcome": host[0],
            "detail": host[1],
            "address": "127.0.0.1",
            "port": 6379,
        }
    failed = [v["outcome"] for v in registered.values() if v["outcome"] != "ok"]
    registered["outcome"] = failed[0] if failed else "ok"
    registered["ok"] = not failed
    return registered


REFUSED = ("refused", "Error 111 connecting to 10.213.57.2:6379. Connection refused.")
TIMEOUT = (
    "timeout",
    "no answer to TCP connect (SYN dropped: firewall DROP, host down, or a full accept "
    "queue): Timeout connecting to server",
)
NO_ROUTE = ("no-route", "Error 113 connecting to 10.213.57.2:6379. No route to host.")
DENIED = (
    "protected-mode",
    "DENIED Redis is running in protected mode because protected mode is enabled and no "
    "password is set for the default user. In this mode connections are only accepted "
    "from the loopback interface.",
)
MAX_CLIENTS = ("max-clients", "ERR max number of clients reached")
OOM = ("oom", "writes refused: OOM command not allowed when used memory > 'maxmemory'.")
TUNNEL_RESET = (
    "error",
    "server reset the connection after accepting it: Error while reading from "
    "127.0.0.1:6379 : (104, 'Connection reset by peer')",
)


def triage(
    sections: dict[str, str],
    registered_probe: Any = None,
    *,
    port: int = 6379,
    symptom: str | None = None,
    maxclients: int | None = None,
    policy: str | None = None,
) -> dict[str, Finding]:
    found = facts(sections, port)
    findings = diagnose(
        found,
        probes_from(registered_probe),
        hits_from_logs(found),
        port,
        symptom=symptom,
        targets=Targets(maxclients, policy),
    )
    causes = [f.cause for f in findings]
    assert len(causes) == len(set(causes)), causes
    return {f.cause: f for f in findings}


# -- no cause ----------------------------------------------------------------------------


def test_a_healthy_host_has_no_findings() -> None:
    assert triage(HEALTHY, probe(("ok", "PONG"))) == {}


def test_a_healthy_host_without_probes_has_no_findings() -> None:
    assert triage(HEALTHY) == {}


# -- one test per cause ------------------------------------------------------------------


def test_debian_default_bind_refuses_remote_clients() -> None:
    found = triage({**DEBIAN_DEFAULT, "sysctl": SYSCTL_ON}, probe(REFUSED))
    assert list(found) == ["bind", "protected-mode"]  # the second waits behind the first
    bind = found["bind"]
    assert bind.summary == (
        "Redis listens on 127.0.0.1 ::1 (loopback only): remote clients are refused"
    )
    assert bind.evidence == (
        "ss: LISTEN 127.0.0.1:6379 redis-server (pid 33)",
        "ss: LISTEN [::1]:6379 redis-server (pid 33)",
        "config /etc/redis/redis.conf: bind 127.0.0.1 -::1",
        "live: bind 127.0.0.1 -::1",
        "control: Error 111 connecting to 10.213.57.2:6379. Connection refused.",
        "host: PONG",
    )
    assert bind.fixable
    assert found["protected-mode"].evidence[:2] == (
        "inferred from the configuration: protected mode on, no password; Redis 7+ refuses "
        "every remote client whatever bind says (this one is 7.0.15)",
        "control: Error 111 connecting to 10.213.57.2:6379. Connection refused.",
    )


def test_protected_mode_denies_remote_clients_without_a_password() -> None:
    sections = {
        **HEALTHY,
        "config": DEBIAN_CONF + "bind 0.0.0.0 -::*\n",
    }
    found = triage(sections, probe(DENIED))
    assert list(found) == ["protected-mode"]
    evidence = found["protected-mode"].evidence
    assert evidence[0].startswith("control: DENIED Redis is running in protected mode")
    assert "config /etc/redis/redis.conf: protected-mode yes" in evidence
    assert "config /etc/redis/redis.conf: no requirepass (no password set)" in evidence


def test_protected_modes_refusals_counted_in_info_are_not_taken_for_maxclients() -> None:
    # Redis counts each DENIED client in rejected_connections, the counter maxclients
    # refusals raise too: our own probe from this machine (or an earlier run's) is one.
    sections = {
        **HEALTHY,
        "config": DEBIAN_CONF + "bind 0.0.0.0 -::*\n",
        "info": info(rejected=3),
    }
    assert list(triage(sections, probe(DENIED))) == ["protected-mode"]
    assert list(triage(sections, probe(REFUSED))) == ["protected-mode"]  # inferred from config


def test_ufw_reject_rule_refuses_while_redis_listens_everywhere() -> None:
    found = triage({**HEALTHY, "ufw": UFW_REJECT}, probe(REFUSED))
    assert list(found) == ["firewall-ufw"]
    assert found["firewall-ufw"].evidence == (
        "ufw: 6379/tcp  REJECT IN  Anywhere",
        "control: Error 111 connecting to 10.213.57.2:6379. Connection refused.",
        "host: PONG",
    )


def test_ufw_deny_rule_makes_remote_clients_time_out() -> None:
    found = triage({**HEALTHY, "ufw": UFW_DENY}, probe(TIMEOUT))
    assert list(found) == ["firewall-ufw"]
    assert found["firewall-ufw"].evidence[0] == "ufw: 6379/tcp  DENY IN  Anywhere"
    assert found["firewall-ufw"].evidence[1].startswith("control: no answer to TCP connect")


def test_firewalld_default_zone_gives_no_route() -> None:
    sections = {
        **HEALTHY,
        "firewalld": "running",
        "firewalld-zone": FIREWALLD_ZONE,
        "firewalld-services": FIREWALLD_SERVICES,
    }
    found = triage(sections, probe(NO_ROUTE))
    assert list(found) == ["firewall-firewalld"]
    assert found["firewall-firewalld"].evidence == (
        "firewalld: zone public: ports: (none); services: dhcpv6-client ssh",
        "control: Error 113 connecting to 10.213.57.2:6379. No route to host.",
        "host: PONG",
    )


def test_firewalld_with_the_redis_service_is_not_blamed() -> None:
    zone = FIREWALLD_ZONE.replace(
        "services: dhcpv6-client ssh", "services: dhcpv6-client redis ssh"
    )
    sections = {
        **HEALTHY,
        "firewalld": "running",
        "firewalld-zone": zone,
        "firewalld-services": FIREWALLD_SERVICES,
    }
    assert "firewall-firewalld" not in triage(sections, probe(NO_ROUTE))


TUNNEL_CLOSED = (
    "protected-mode",
    "server closed the connection without a reply: likely protected mode (its close can beat "
    "the DENIED text); an SSH tunnel or proxy whose target refused, or a TLS-only port, looks "
    "the same",
)


@pytest.mark.parametrize("host_saw", [TUNNEL_RESET, TUNNEL_CLOSED], ids=["reset", "closed"])
def test_stopped_and_disabled_unit(host_saw: tuple[str, str]) -> None:
    sections = {
        **HEALTHY,
        "unit": UNIT_STOPPED_DISABLED,
        "pid": " ",
        "listen": LISTEN_SSH_ONLY,
        "limits": "",
        "info": "redmedic: no redis-server process",
        "live-config": "",
        "config-path": "unit read\n/etc/redis/redis.conf",
    }
    # Protected mode never refuses loopback clients: a tunnel that closed is not it.
    found = triage(sections, probe(REFUSED, host_saw))
    assert list(found) == ["not-running", "not-enabled"]
    assert found["not-running"].summary == "redis-server is not running"
    assert found["not-running"].evidence[:2] == (
        "systemd: redis-server.service ActiveState=inactive SubState=dead Result=success "
        "NRestarts=0 UnitFileState=disabled",
        "pgrep/ss: no redis-server process; nothing of Redis listens on 6379",
    )
    assert found["not-enabled"].summary == (
        "redis-server.service is disabled: Redis will not come back after a reboot"
    )


def test_port_taken_by_another_process_keeps_redis_down() -> None:
    sections = {
        **DEBIAN_DEFAULT,
        "sysctl": SYSCTL_ON,
        "unit": UNIT_FAILED,
        "pid": " ",
        "listen": LISTEN_PORT_TAKEN,
        "limits": "",
        "info": "redmedic: no redis-server process",
        "live-config": "",
        "config-path": "unit read\n/etc/redis/redis.conf",
        "log": LOG_START + "\n" + LOG_PORT_IN_USE,
        "journal": JOURNAL_FAILED,
    }
    found = triage(sections, probe(REFUSED, ("timeout", "Timeout reading from socket")))
    # Debian's config: once it runs, the loopback bind and protected mode refuse too
    assert list(found) == ["not-running", "bind", "protected-mode"]
    assert found["bind"].evidence[:2] == (
        "inferred from the configuration: Redis is not running; it binds loopback only",
        "config /etc/redis/redis.conf: bind 127.0.0.1 -::1",
    )
    assert "(version unknown: 7+ taken)" in found["protected-mode"].evidence[0]
    finding = found["not-running"]
    assert finding.summary == (
        "redis-server is not running: its port is taken by another process (Address already in use)"
    )
    assert "ss: LISTEN 127.0.0.1:6379 python3 (pid 91) (holds the port)" in finding.evidence
    assert (
        "log: 118:M 25 Nov 2026 14:55:00.012 # Warning: Could not create server TCP listening "
        "socket 127.0.0.1:6379: bind: Address already in use" in finding.evidence
    )


def test_redis_on_another_port_than_clients_expect() -> None:
    sections = {
        **DEBIAN_DEFAULT,
        "sysctl": SYSCTL_ON,
        "listen": LISTEN_6380,
        "cli-target": "127.0.0.1 6380",
        "info": info(port=6380),
        "live-config": live(port="6380"),
        "config": DEBIAN_CONF + "port 6380\n",
    }
    found = triage(sections, probe(REFUSED, TUNNEL_RESET))
    assert list(found) == ["wrong-port", "bind", "protected-mode"]
    assert found["bind"].evidence[:2] == (
        "inferred from the configuration: Redis listens on another port; it binds loopback only",
        "ss: LISTEN 127.0.0.1:6380 redis-server (pid 33)",
    )
    assert found["wrong-port"].summary == "Redis listens on port 6380, clients expect 6379"
    assert "config /etc/redis/redis.conf: port 6380" in found["wrong-port"].evidence
    assert "ss: LISTEN 127.0.0.1:6380 redis-server (pid 33)" in found["wrong-port"].evidence


def test_all_client_slots_taken() -> None:
    sections = {
        **HEALTHY,
        "config": OPEN_CONF + "maxclients 2\n",
        "config-path": "unit read\n/etc/redis/redis.conf",
        "info": "AUTH failed: ERR max number of clients reached\nError: Connection reset by peer",
        "live-config": "",
    }
    found = triage(sections, probe(MAX_CLIENTS, MAX_CLIENTS))
    assert list(found) == ["max-clients"]
    assert found["max-clients"].evidence == (
        "control: ERR max number of clients reached",
        "host: ERR max number of clients reached",
        "redis-cli on the host: AUTH failed: ERR max number of clients reached / "
        "Error: Connection reset by peer",
    )


def test_connected_clients_at_maxclients_is_enough_evidence() -> None:
    sections = {**HEALTHY, "info": info(connected=32, maxclients=32, rejected=7)}
    sections["config"] = OPEN_CONF + "maxclients 32\n"
    found = triage(sections)
    assert list(found) == ["max-clients"]
    assert found["max-clients"].evidence == (
        "INFO clients: connected_clients=32 maxclients=32",
        "INFO stats: rejected_connections=7 (refused at maxclients)",
    )


def test_low_open_file_limit_reduces_maxclients() -> None:
    sections = {
        **HEALTHY,
        "limits": LIMITS_64,
        "info": info(maxclients=32),
        "live-config": live(bind="0.0.0.0 -::*", maxclients="32"),
        "log": LOG_NOFILE,
    }
    found = triage(sections, probe(("ok", "PONG")))
    assert list(found) == ["nofile-limit"]
    finding = found["nofile-limit"]
    assert finding.summary == (
        "the open-file limit (64) is below the 10032 that maxclients 10000 needs: "
        "Redis caps its clients"
    )
    assert finding.evidence[:3] == (
        "/proc/33/limits: Max open files 64 (soft)",
        "maxclients 10000 needs 10032 file descriptors",
        "running maxclients 32",
    )
    assert any("maxclients has been reduced to 32" in line for line in finding.evidence)


def test_a_fixed_ulimit_from_an_earlier_start_is_not_reported() -> None:
    # The log still holds yesterday's low-ulimit start; the current start is fine.
    sections = {**HEALTHY, "log": LOG_NOFILE + "\n" + LOG_START}
    assert triage(sections, probe(("ok", "PONG"))) == {}


def test_memory_full_under_noeviction_refuses_writes() -> None:
    sections = {
        **HEALTHY,
        "config": OPEN_CONF + "maxmemory 2mb\nmaxmemory-policy noeviction\n",
        "info": info(used=6424576, overhead=1109496, maxmemory=2097152),
        "live-config": live(bind="0.0.0.0 -::*", maxmemory="2097152"),
    }
    # the fix switches to allkeys-lru: evicting leaves 1.1 of 2 MiB, enough room for writes
    found = triage(sections, probe(OOM, OOM), policy="allkeys-lru")
    assert list(found) == ["oom"]
    assert found["oom"].summary == "Redis is at maxmemory with noeviction: writes fail with OOM"
    assert found["oom"].evidence[2:] == (
        "INFO memory: used_memory=6424576 used_memory_overhead=1109496 maxmemory=2097152 "
        "maxmemory_policy=noeviction",
    )


def test_the_kernel_oom_killer_naming_redis_server() -> None:
    # Not captured (killing the test VM's memory is not an option): the line follows the
    # kernel's own format string (mm/oom_kill.c, __oom_kill_process), as dmesg prints it.
    kernel = (
        "[ 5211.338121] Out of memory: Killed process 812 (redis-server) total-vm:3145728kB, "
        "anon-rss:2883584kB, file-rss:0kB, shmem-rss:0kB, UID:104 pgtables:5800kB "
        "oom_score_adj:0"
    )
    found = triage({**HEALTHY, "kernel": kernel})
    assert list(found) == ["oom"]
    assert found["oom"].summary == "the kernel's OOM killer killed redis-server"
    assert found["oom"].evidence == (f"log: {kernel}",)


def test_overcommit_comes_from_sysctl_not_from_redis_warning() -> None:
    found = triage({**HEALTHY, "sysctl": SYSCTL_OFF, "check-system": CHECK_SYSTEM})
    assert list(found) == ["overcommit"]
    assert found["overcommit"].evidence[:2] == (
        "sysctl: vm.overcommit_memory = 0 (Redis wants 1)",
        "redis-server --check-system: [overcommit]...WARNING",
    )
    # Inside nspawn hosts redis warns from its own /proc whatever the host's value is:
    # the warning alone, with sysctl at 1, is not a finding.
    warned = {**HEALTHY, "log": LOG_START + "\n" + LOG_OVERCOMMIT}
    assert triage(warned) == {}


def test_network_when_the_host_is_fine_and_no_firewall_explains_it() -> None:
    found = triage(HEALTHY, probe(TIMEOUT))
    assert list(found) == ["network"]
    network = found["network"]
    assert not network.fixable
    assert network.summary.startswith(
        "Redis is fine on the host, but packets to the port are dropped on the way"
    )
    assert network.evidence == (
        "control: no answer to TCP connect (SYN dropped: firewall DROP, host down, or a full "
        "accept queue): Timeout connecting to server",
        "host: PONG",
        "ss: LISTEN 0.0.0.0:6379 redis-server (pid 33)",
        "ss: LISTEN [::]:6379 redis-server (pid 33)",
        "ufw: inactive",
        "firewalld: not running",
    )


def test_ufw_that_allows_the_port_does_not_explain_a_refusal() -> None:
    found = triage({**HEALTHY, "ufw": UFW_ALLOW}, probe(REFUSED))
    assert list(found) == ["network"]


def test_client_when_every_vantage_point_reaches_the_server() -> None:
    found = triage(HEALTHY, probe(("ok", "PONG")), symptom="app-1: Connection refused")
    assert list(found) == ["client"]
    client = found["client"]
    assert not client.fixable
    assert client.evidence == ("control: PONG", "host: PONG", "reported: app-1: Connection refused")


def test_a_wrong_password_is_the_clients_problem() -> None:
    wrongpass = ("auth-failed", "WRONGPASS invalid username-password pair or user is disabled.")
    found = triage(HEALTHY, probe(wrongpass))
    assert list(found) == ["client"]
    assert found["client"].summary == (
        "the server works; clients must send the right password (AUTH)"
    )


def test_several_causes_at_once_are_all_named_in_order() -> None:
    # Debian default + LimitNOFILE=64 + overcommit 0 (the "nofile" host as captured).
    sections = {
        **DEBIAN_DEFAULT,
        "limits": LIMITS_64,
        "info": info(maxclients=32),
        "live-config": live(maxclients="32"),
        "log": LOG_NOFILE,
    }
    found = triage(sections, probe(REFUSED))
    assert list(found) == ["bind", "protected-mode", "nofile-limit", "overcommit"]


# -- causes the facts imply before a probe can see them ------------------------------------

FULL_WITHOUT_PASSWORD = {
    **HEALTHY,
    "config": DEBIAN_CONF + "bind 0.0.0.0 -::*\nmaxclients 2\n",
    "config-path": "unit read\n/etc/redis/redis.conf",
    "info": "ERR max number of clients reached\nError: Connection reset by peer",
    "live-config": "",
}


def test_protected_mode_hidden_behind_full_client_slots_is_named_too() -> None:
    # Given a server at maxclients whose config has protected mode on and no password,
    # when every probe meets "max number of clients reached" (Redis checks that first),
    # then protected mode is named from the configuration, so one run fixes both.
    found = triage(FULL_WITHOUT_PASSWORD, probe(MAX_CLIENTS, MAX_CLIENTS))
    assert list(found) == ["protected-mode", "max-clients"]
    evidence = found["protected-mode"].evidence
    assert evidence[0].startswith("inferred from the configuration: protected mode on")
    assert "control: ERR max number of clients reached" in evidence
    assert "config /etc/redis/redis.conf: no requirepass (no password set)" in evidence


def test_protected_mode_is_not_inferred_where_it_would_not_refuse() -> None:
    before_7 = {**HEALTHY, "config": DEBIAN_CONF, "info": info(version="6.0.16")}
    assert "protected-mode" not in triage(before_7)  # 6.0 with a bind lets clients in
    no_bind = DEBIAN_CONF.replace("bind 127.0.0.1 -::1\n", "")
    assert "protected-mode" in triage({**before_7, "config": no_bind})
    acl = DEBIAN_CONF + "bind 0.0.0.0\nuser default on >s3cret ~* &* +@all\n"
    assert "protected-mode" not in triage({**HEALTHY, "config": acl})
    nopass = DEBIAN_CONF + "bind 0.0.0.0\nuser default on nopass ~* &* +@all\n"
    assert "protected-mode" in triage({**HEALTHY, "config": nopass})
    off = DEBIAN_CONF.replace("protected-mode yes", "protected-mode no")
    assert "protected-mode" not in triage({**HEALTHY, "config": off})
    # this machine got in: the server does let clients in, whatever its file says
    assert "protected-mode" not in triage({**HEALTHY, "config": nopass}, probe(("ok", "PONG")))


def test_a_stopped_server_is_judged_by_the_version_it_will_start_as() -> None:
    # Given Redis 6.0 installed but stopped, with Debian's bind and no password, protected
    # mode will not refuse remote clients once it starts (6.x applies it only without a
    # bind): the installed binary's version decides, not the stricter 7.0 rule.
    stopped = {
        **HEALTHY,
        "config": DEBIAN_CONF,
        "info": "redmedic: no redis-server process",
        "live-config": "",
        "binary-version": "6.0.16",
    }
    assert "protected-mode" not in triage(stopped, probe(REFUSED, REFUSED))
    assert "protected-mode" in triage(
        {**stopped, "binary-version": "7.0.15"}, probe(REFUSED, REFUSED)
    )


def test_a_stopped_server_configured_for_another_port_is_named_wrong_port() -> None:
    sections = {
        **HEALTHY,
        "unit": UNIT_STOPPED_DISABLED,
        "pid": " ",
        "listen": LISTEN_SSH_ONLY,
        "limits": "",
        "info": "redmedic: no redis-server process",
        "live-config": "",
        "config-path": "unit read\n/etc/redis/redis.conf",
        "config": OPEN_CONF + "port 6380\n",
    }
    found = triage(sections, probe(REFUSED, REFUSED))
    assert list(found) == ["not-running", "not-enabled", "wrong-port"]
    assert found["wrong-port"].summary == "Redis is configured for port 6380, clients expect 6379"
    assert found["wrong-port"].evidence[:2] == (
        "inferred from the configuration: Redis is not running, and its config makes it "
        "listen on 6380",
        "config /etc/redis/redis.conf: port 6380",
    )


def test_the_open_files_a_raised_maxclients_needs_are_checked_in_the_same_run() -> None:
    # maxclients 2 is full and the unit allows 40 files: enough for 2, not for the 10000
    # the max-clients fix sets (Redis would cap it at 8 on the restart).
    sections = {
        **HEALTHY,
        "config": OPEN_CONF + "maxclients 2\n",
        "limits": LIMITS_64.replace("64  ", "40  "),
        "info": info(connected=2, maxclients=2),
    }
    assert list(triage(sections)) == ["max-clients"]
    found = triage(sections, maxclients=10000)
    assert list(found) == ["max-clients", "nofile-limit"]
    assert "maxclients 10000 (after the max-clients fix) needs 10032 file descriptors" in (
        found["nofile-limit"].evidence
    )


def test_overcommit_in_a_container_is_reported_not_fixable() -> None:
    mounts = "/proc/sys ro,nosuid,nodev,noexec,relatime"
    found = triage({**HEALTHY, "sysctl": SYSCTL_OFF, "proc-sys": mounts})
    overcommit = found["overcommit"]
    assert not overcommit.fixable
    assert "set vm.overcommit_memory = 1 on the machine that runs it" in overcommit.summary
    assert triage({**HEALTHY, "sysctl": SYSCTL_OFF, "proc-sys": ""})["overcommit"].fixable


# -- memory: a fix that holds -------------------------------------------------------------

# maxmemory 1mb, as captured after allkeys-lru had evicted every key: Redis's own memory
# (used_memory_overhead) fills the limit, so eviction has nothing left to free.
AT_1MB = {
    **HEALTHY,
    "config": OPEN_CONF + "maxmemory 1mb\nmaxmemory-policy allkeys-lru\n",
    "info": info(used=1088496, overhead=876624, maxmemory=1048576, policy="allkeys-lru"),
    "free": FREE,
}


def test_eviction_that_cannot_free_room_gets_maxmemory_sized_from_the_host() -> None:
    found = triage(AT_1MB, probe(OOM, OOM), policy="allkeys-lru")
    oom = found["oom"]
    assert oom.fixable
    assert oom.summary == (
        "evicting keys (allkeys-lru) cannot free room: what Redis cannot evict fills "
        "maxmemory, writes fail with OOM; under allkeys-lru maxmemory must grow: the fix "
        "sets 64mb"
    )
    assert oom.evidence[2:] == (
        "INFO memory: used_memory=1088496 used_memory_overhead=876624 maxmemory=1048576 "
        "maxmemory_policy=allkeys-lru",
        "allkeys-lru leaves 0.8 MiB that eviction cannot free (used_memory 1.0 MiB, "
        "used_memory_overhead 0.8 MiB, 0 keys, 0 with a TTL): writes need maxmemory "
        ">= 1.1 MiB, it is 1.0 MiB",
        "free -b: 23279 MiB available: Redis may have at most 11641 MiB (its 1.0 MiB + half "
        "of that)",
    )
    # no probe needed: the facts alone say so (right after a restart a write may pass)
    assert "oom" in triage(AT_1MB)


def test_raising_maxclients_grows_what_eviction_cannot_free() -> None:
    # As captured at maxclients 3 (2 held, 1 refused) and maxmemory 1mb: Redis's event
    # loop is sized for maxclients, so the max-clients fix to 10000 adds ~0.4 MiB of its own.
    sections = {
        **AT_1MB,
        "config": OPEN_CONF + "maxmemory 1mb\nmaxclients 3\n",
        "info": info(used=5896672, overhead=580616, maxmemory=1048576, connected=3,
                     maxclients=3, rejected=1),
    }  # fmt: skip
    alone = triage(sections, policy="allkeys-lru")
    assert "must grow" not in alone["oom"].summary  # 0.55 MiB of 1: the policy would do
    both = triage(sections, policy="allkeys-lru", maxclients=10000)
    assert list(both) == ["max-clients", "oom"]
    assert both["oom"].summary.endswith("the fix sets 64mb")


def test_the_triage_registers_the_maxmemory_its_oom_fix_sets() -> None:
    args = TriageArgs(
        facts=registered(facts(AT_1MB)), maxmemory_policy="allkeys-lru", causes=["oom"]
    )
    result = triage_step(args)
    assert (result.facts["causes"], result.facts["maxmemory"]) == (["oom"], "64mb")


def test_a_data_store_under_noeviction_gets_room_to_double() -> None:
    sections = {**AT_1MB, "info": info(used=200 * 2**20, overhead=2**20, maxmemory=200 * 2**20)}
    found = triage(sections, policy="noeviction")
    assert found["oom"].summary.endswith("the fix sets 400mb")


def test_volatile_policy_with_no_ttl_keys_frees_nothing() -> None:
    keys = "db0:keys=5000,expires=0,avg_ttl=0"
    sections = {
        **AT_1MB,
        "info": info(
            used=7 * 2**20, overhead=2**20, maxmemory=8 * 2**20, policy="volatile-lru",
            keyspace=keys,
        ),
    }  # fmt: skip
    found = triage(sections)
    assert found["oom"].summary.startswith("evicting keys (volatile-lru) cannot free room")
    switched = triage(sections, policy="allkeys-lru")["oom"]  # the fix's policy evicts enough
    assert switched.fixable and "maxmemory must grow" not in switched.summary


def test_memory_that_does_not_fit_the_host_is_reported_with_what_is_needed() -> None:
    small = FREE.replace("24410050560", "    8388608")  # 8 MiB available
    sections = {**AT_1MB, "free": small, "info": info(used=30 * 2**20, overhead=2**20,
                                                      maxmemory=30 * 2**20)}  # fmt: skip
    oom = triage(sections, probe(OOM), policy="noeviction")["oom"]
    assert not oom.fixable
    assert oom.summary.endswith(
        "under noeviction Redis needs maxmemory >= 40 MiB, more than this host can give it "
        "(34 MiB): add RAM or delete keys, or set redis_maxmemory (and "
        "redis_maxmemory_policy) knowingly"
    )
    args = TriageArgs(facts=registered(facts(sections)), maxmemory_policy="noeviction")
    assert triage_step(args).facts["maxmemory"] is None


def test_an_earlier_oom_kill_is_history_once_a_limit_that_holds_is_set() -> None:
    kernel = "[ 5211.338121] Out of memory: Killed process 812 (redis-server) total-vm:3145728kB"
    limited = {
        **HEALTHY,
        "kernel": kernel,
        "info": info(maxmemory=512 * 2**20, policy="allkeys-lru"),
    }
    assert triage(limited) == {}
    unlimited = triage({**HEALTHY, "kernel": kernel})["oom"]
    assert unlimited.summary == "the kernel's OOM killer killed redis-server"


# -- reading probes ----------------------------------------------------------------------


def test_probes_are_read_from_the_probe_steps_registered_result() -> None:
    probes = probes_from(probe(REFUSED))
    assert probes == Probes(
        control=Vantage("control", ProbeOutcome.REFUSED, REFUSED[1], "10.213.57.2"),
        host=Vantage("host", ProbeOutcome.OK, "PONG", "127.0.0.1"),
    )


def test_probes_from_lists_and_explicit_vantages() -> None:
    registered = [
        {"outcome": "timeout", "detail": "Timeout connecting to server"},
        {"vantage": "host", "outcome": "ok", "detail": "PONG"},
    ]
    probes = probes_from(registered)
    assert probes.control is not None and probes.control.outcome is ProbeOutcome.TIMEOUT
    assert probes.host is not None and probes.host.answered
    assert probes_from(None) == Probes()
    unknown = probes_from({"outcome": "weird", "detail": "?"}).control
    assert unknown is not None and unknown.outcome is ProbeOutcome.ERROR


# -- the step ----------------------------------------------------------------------------


def registered(result_facts: dict[str, Any]) -> dict[str, Any]:
    """A step result as `register:` exposes it (facts plus rc, stdout...)."""
    return {**result_facts, "rc": 0, "stdout": "", "stderr": "", "failed": False, "msg": ""}


def triage_step(args: TriageArgs) -> StepResult:
    """The step's registered result for `args` (it reads no host)."""
    step = RedisTriage()
    return step.registered(step.diagnose(args, step_context()))


def test_the_step_exposes_causes_for_when_expressions() -> None:
    args = TriageArgs(
        facts=registered(facts({**DEBIAN_DEFAULT, "log": LOG_NOFILE, "limits": LIMITS_64})),
        probe=registered(probe(REFUSED)),
    )
    result = triage_step(args)
    causes = ["bind", "protected-mode", "nofile-limit", "overcommit"]
    assert result.facts["causes"] == result.facts["fixable"] == causes
    assert result.facts["maxmemory"] is None
    assert result.facts["findings"][0]["evidence"][0] == (
        "ss: LISTEN 127.0.0.1:6379 redis-server (pid 33)"
    )
    assert result.rc == 1 and not result.failed
    assert result.msg == "causes: bind, protected-mode, nofile-limit, overcommit"
    assert [f.cause for f in result.findings] == result.facts["causes"]


def test_the_step_uses_log_scan_hits_when_given() -> None:
    logs = {"hits": {"oom-killer": ["redis-server invoked oom-killer: gfp_mask=0x140cca"]}}
    args = TriageArgs(facts=registered(facts(HEALTHY)), logs=registered(logs))
    result = triage_step(args)
    assert result.facts["causes"] == ["oom"]


def test_the_step_on_a_healthy_host_reports_nothing() -> None:
    args = TriageArgs(facts=registered(facts(HEALTHY)), probe=registered(probe(("ok", "PONG"))))
    result = triage_step(args)
    assert (result.rc, result.msg, result.facts["causes"], result.findings) == (
        0,
        "no cause found",
        [],
        (),
    )


def test_the_step_refuses_a_missing_facts_result() -> None:
    with pytest.raises(ValidationError, match="holds no redis_facts result"):
        TriageArgs(facts={"skipped": True, "rc": 0})


# -- facts parsing on the same real outputs ----------------------------------------------


def test_facts_parse_the_real_sections() -> None:
    found, secrets = parse_facts(HEALTHY, 6379)
    assert found["unit"]["main_pid"] == 33
    assert found["unit"]["exec_start"] == (
        "/usr/bin/redis-server /etc/redis/redis.conf --supervised systemd --daemonize no"
    )
    assert found["redis_listening"] == [
        {"address": "0.0.0.0", "port": 6379, "process": "redis-server", "pid": 33},
        {"address": "::", "port": 6379, "process": "redis-server", "pid": 33},
    ]
    assert found["max_open_files"] == {"soft": 20000, "hard": 20000}
    assert found["info"]["clients"]["maxclients"] == 10000
    assert found["info"]["server"]["config_file"] == "/etc/redis/redis.conf"
    assert found["live_config"]["bind"] == "0.0.0.0 -::*"
    assert found["config"]["directives"]["bind"] == "0.0.0.0 -::*"
    assert found["config"]["directives"]["requirepass"] == MASK
    assert secrets == [PASSWORD]
    assert found["kernel"] == {
        "overcommit_memory": 1,
        "somaxconn": 4096,
        "thp": "madvise",
        "overcommit_settable": None,  # no /proc/sys mount lines: a machine, not a container
    }
    assert found["memory"]["total"] == 25276514304
    assert found["firewall"] == {
        "ufw": {"status": "inactive"},
        "firewalld": {"state": "not running"},
    }


def test_facts_record_the_firewall_verdicts() -> None:
    ufw = facts({**HEALTHY, "ufw": UFW_REJECT})["firewall"]["ufw"]
    assert ufw["port_open"] is False
    assert ufw["deciding"] == "6379/tcp  REJECT IN  Anywhere"
    assert ufw["default_incoming"] == "deny"
    zone = facts({**HEALTHY, "firewalld": "running", "firewalld-zone": FIREWALLD_ZONE})
    assert zone["firewall"]["firewalld"]["port_open"] is False
    assert zone["firewall"]["firewalld"]["services"] == ["dhcpv6-client", "ssh"]


def test_a_password_on_the_command_line_is_a_secret() -> None:
    sections = {**HEALTHY, "cmdline": "redis-server\n--port\n6390\n--requirepass\ns3cret"}
    assert parse_facts(sections, 6379)[1] == [PASSWORD, "s3cret"]


def test_a_log_hit_list_can_be_passed_directly() -> None:
    hits = [LogHit("nofile", "maxclients has been reduced to 32 to compensate for low ulimit")]
    found = diagnose(facts(HEALTHY), None, hits, 6379)
    assert [f.cause for f in found] == ["nofile-limit"]
