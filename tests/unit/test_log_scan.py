"""Known trouble in Redis, systemd and kernel logs, matched on the exact texts they print.

User story: given a host whose redis log, unit journal or kernel log holds one of the
messages Redis prints when clients will be refused, when `log_scan` reads them, then the
message is reported under its kind, with the line as evidence — and only messages from
the current start count, except for events such as OOM kills.

Lines marked "captured" were printed by redis-server 7.0.15 on this machine or on the
Debian 12 test hosts; the others are the format strings of the Redis (or kernel, systemd)
sources, filled in as the program fills them.
"""

from __future__ import annotations

from typing import Any

import pytest

from redmedic.redis.logs import (
    KINDS,
    LogHit,
    hits_by_kind,
    hits_from_logs,
    log_findings,
    scan_current,
    scan_log,
)
from redmedic.steps.log_scan import LogScan, LogScanArgs, Scanned
from redmedic.testing import step_context

# (kind, line): one real line per message family.
LINES: list[tuple[str, str]] = [
    # captured: LimitNOFILE=64 on a Debian 12 host
    (
        "nofile",
        "100:M 25 Nov 2026 14:54:50.387 # You requested maxclients of 10000 requiring at "
        "least 10032 max file descriptors.",
    ),
    (
        "nofile",
        "100:M 25 Nov 2026 14:54:50.387 # Server can't set maximum open files to 10032 "
        "because of OS error: Operation not permitted.",
    ),
    (
        "nofile",
        "100:M 25 Nov 2026 14:54:50.387 # Current maximum open files is 64. maxclients has "
        "been reduced to 32 to compensate for low ulimit. If you need higher maxclients "
        "increase 'ulimit -n'.",
    ),
    # captured: `ulimit -n 20` on this machine
    (
        "nofile",
        "16745:M 25 Nov 2026 14:44:04.725 # Your current 'ulimit -n' of 20 is not enough for "
        "the server to start. Please increase your open file limit to at least 10032. "
        "Exiting.",
    ),
    ("max-clients", "ERR max number of clients reached"),
    ("max-clients", "-ERR max number of clients + cluster connections reached"),
    # captured (7.0.15)
    (
        "overcommit",
        "84:M 25 Nov 2026 14:53:45.700 # WARNING Memory overcommit must be enabled! Without "
        "it, a background save or replication may fail under low memory condition.",
    ),
    # older wording (before 7.2 upstream)
    (
        "overcommit",
        "1:M 02 Jan 2021 10:00:00.000 # WARNING overcommit_memory is set to 0! Background save "
        "may fail under low memory condition. To fix this issue add 'vm.overcommit_memory = 1' "
        "to /etc/sysctl.conf and then reboot or run the command 'sysctl "
        "vm.overcommit_memory=1' for this to take effect.",
    ),
    ("oom", "OOM command not allowed when used memory > 'maxmemory'."),
    (
        "fork-failed",
        "812:M 25 Nov 2026 15:01:02.003 # Can't save in background: fork: Cannot allocate memory",
    ),
    # captured: port 6379 held by another process
    (
        "port-in-use",
        "118:M 25 Nov 2026 14:55:00.012 # Warning: Could not create server TCP listening "
        "socket 127.0.0.1:6379: bind: Address already in use",
    ),
    # captured: bind to an address the host does not have
    (
        "bind-address",
        "16757:M 25 Nov 2026 14:44:06.758 # Warning: Could not create server TCP listening "
        "socket 10.9.9.9:6399: bind: Cannot assign requested address",
    ),
    (
        "listen-failed",
        "118:M 25 Nov 2026 14:55:00.012 # Failed listening on port 6379 (TCP), aborting.",
    ),
    (
        "protected-mode",
        "DENIED Redis is running in protected mode because protected mode is enabled and no "
        "password is set for the default user.",
    ),
    (
        "thp",
        "812:M 25 Nov 2026 15:00:00.000 # WARNING You have Transparent Huge Pages (THP) "
        "support enabled in your kernel. This will create latency and memory usage issues "
        "with Redis.",
    ),
    (
        "tcp-backlog",
        "812:M 25 Nov 2026 15:00:00.000 # WARNING: The TCP backlog setting of 511 cannot be "
        "enforced because /proc/sys/net/core/somaxconn is set to the lower value of 128.",
    ),
    (
        "oom-killer",
        "[ 5211.337915] redis-server invoked oom-killer: gfp_mask=0x140cca(GFP_HIGHUSER_MOVABLE"
        "|__GFP_COMP), order=0, oom_score_adj=0",
    ),
    (
        "oom-killer",
        "[ 5211.338096] oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,"
        "mems_allowed=0,global_oom,task_memcg=/system.slice/redis-server.service,"
        "task=redis-server,pid=812,uid=104",
    ),
    (
        "oom-killer",
        "[ 5211.338121] Out of memory: Killed process 812 (redis-server) total-vm:3145728kB, "
        "anon-rss:2883584kB, file-rss:0kB, shmem-rss:0kB, UID:104 pgtables:5800kB "
        "oom_score_adj:0",
    ),
    (
        "oom-killer",
        "Nov 25 15:10:00 db1 systemd[1]: redis-server.service: A process of this unit has been "
        "killed by the OOM killer.",
    ),
    (
        "oom-killer",
        "Nov 25 15:10:00 db1 systemd[1]: redis-server.service: Failed with result 'oom-kill'.",
    ),
]

# Captured lines of a normal start: none of them is trouble.
QUIET = """\
33:C 25 Nov 2026 14:54:38.033 # oO0OoO0OoO0Oo Redis is starting oO0OoO0OoO0Oo
33:C 25 Nov 2026 14:54:38.033 # Redis version=7.0.15, bits=64, commit=00000000, modified=0, pid=33, just started
33:C 25 Nov 2026 14:54:38.033 # Configuration loaded
33:M 25 Nov 2026 14:54:38.034 * monotonic clock: POSIX clock_gettime
33:M 25 Nov 2026 14:54:38.034 * Running mode=standalone, port=6379.
33:M 25 Nov 2026 14:54:38.034 # Server initialized
33:M 25 Nov 2026 14:54:38.035 * Ready to accept connections
Nov 25 14:54:38 rmt0-001 systemd[1]: Started redis-server.service - Advanced key-value store.
Nov 25 14:54:59 rmt0-012 systemd[1]: redis-server.service: Failed with result 'exit-code'."""  # noqa: E501


@pytest.mark.parametrize(
    ("kind", "line"), LINES, ids=[f"{k}-{i}" for i, (k, _) in enumerate(LINES)]
)
def test_each_known_message_is_recognised(kind: str, line: str) -> None:
    assert scan_log(line) == [LogHit(kind, line)]


def test_every_kind_has_a_real_line() -> None:
    assert {kind for kind, _ in LINES} == set(KINDS)


def test_a_normal_start_is_not_trouble() -> None:
    assert scan_log(QUIET) == []


def test_hits_keep_their_order_and_text() -> None:
    text = "\n".join(["noise", LINES[2][1], "more noise  ", LINES[10][1] + "   "])
    assert scan_log(text) == [LogHit("nofile", LINES[2][1]), LogHit("port-in-use", LINES[10][1])]


def test_only_the_current_start_counts_but_oom_kills_always_do() -> None:
    old_start = "\n".join(
        [
            "1:C 24 Nov 2026 09:00:00.000 # oO0OoO0OoO0Oo Redis is starting oO0OoO0OoO0Oo",
            LINES[2][1],  # low ulimit at yesterday's start, fixed since
            LINES[19][1],  # systemd: killed by the OOM killer
        ]
    )
    text = old_start + "\n" + QUIET
    assert scan_current(text) == [LogHit("oom-killer", LINES[19][1])]
    assert scan_current(LINES[2][1]) == [LogHit("nofile", LINES[2][1])]  # no banner: all of it


def test_logs_gathered_by_redis_facts_are_scanned_per_source() -> None:
    logs: dict[str, Any] = {
        "log": {"path": "/var/log/redis/redis-server.log", "lines": [LINES[2][1]]},
        "journal": [LINES[20][1]],
        "kernel_oom": [LINES[18][1]],
    }
    assert [h.kind for h in hits_from_logs(logs)] == ["nofile", "oom-killer", "oom-killer"]
    assert hits_from_logs({}) == []


def test_hits_group_by_kind_without_repeats() -> None:
    hits = [LogHit("nofile", "a"), LogHit("thp", "b"), LogHit("nofile", "a"), LogHit("nofile", "c")]
    assert hits_by_kind(hits) == {"nofile": ["a", "c"], "thp": ["b"]}


def test_findings_name_causes_with_the_last_lines_as_evidence() -> None:
    hits = [LogHit(kind, line) for kind, line in LINES]
    findings = {f.cause: f for f in log_findings(hits)}
    assert list(findings) == [
        "nofile-limit",
        "max-clients",
        "overcommit",
        "oom",
        "not-running",
        "bind",
        "protected-mode",
    ]
    assert len(findings["nofile-limit"].evidence) == 3
    assert (
        findings["nofile-limit"]
        .evidence[-1]
        .startswith("log: 16745:M 25 Nov 2026 14:44:04.725 # Your current 'ulimit -n' of 20")
    )
    assert findings["oom"].evidence[-1] == f"log: {LINES[20][1]}"
    # THP and the TCP backlog are facts, not causes of a refused connection.
    assert all("Transparent" not in line for f in findings.values() for line in f.evidence)


def test_long_lines_are_clipped_in_evidence() -> None:
    line = "x" * 300 + " maxclients has been reduced to 32"
    (finding,) = log_findings([LogHit("nofile", line)])
    assert finding.evidence == ("log: " + "x" * 239 + "…",)


def test_the_step_scans_registered_facts_without_a_round_trip() -> None:
    ctx = step_context()
    facts = {
        "log": {"path": "/var/log/redis/redis-server.log", "lines": QUIET.splitlines()},
        "journal": [],
        "kernel_oom": [LINES[18][1]],
        "rc": 0,
    }
    result = LogScan().registered(LogScan().diagnose(LogScanArgs(facts=facts), ctx))
    assert result.facts == {
        "hits": {"oom-killer": [LINES[18][1]]},
        "kinds": ["oom-killer"],
        "log_path": "/var/log/redis/redis-server.log",
    }
    assert result.rc == 1 and not result.failed
    assert [f.cause for f in result.findings] == ["oom"]
    quiet = LogScan().registered(
        LogScan().diagnose(LogScanArgs(facts={**facts, "kernel_oom": []}), ctx)
    )
    assert (quiet.rc, quiet.msg, quiet.findings) == (0, "no known trouble in the logs", ())


def test_findings_can_be_left_to_the_triage_step() -> None:
    facts = {
        "log": {"path": "/var/log/redis/redis-server.log", "lines": []},
        "journal": [],
        "kernel_oom": [LINES[18][1]],
        "rc": 0,
    }
    step = LogScan()
    quiet = step.registered(step.diagnose(LogScanArgs(facts=facts, findings=False), step_context()))
    assert quiet.facts["kinds"] == ["oom-killer"] and quiet.findings == ()


def test_what_the_step_registers_follows_from_its_hits_alone() -> None:
    # Given the hits diagnose found (the same line twice, and an OOM kill), when the step
    # reports them, then each line shows once under its kind and each cause once.
    found = Scanned(
        (LogHit("nofile", LINES[0][1]), LogHit("nofile", LINES[0][1]), LogHit(*LINES[18])),
        "/var/log/redis/redis-server.log",
    )
    result = LogScan().registered(found)
    assert result.facts["hits"] == {"nofile": [LINES[0][1]], "oom-killer": [LINES[18][1]]}
    assert [f.cause for f in result.findings] == ["nofile-limit", "oom"]
    assert result.rc == 1
