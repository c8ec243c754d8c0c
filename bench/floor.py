"""The bare-paramiko floor: the least work any SSH tool can do for the benchmark's job.

    python bench/floor.py JOB.json --mode channels|oneexec|triage --forks N

Per host, on a thread pool of N: one TCP connection with TCP_NODELAY, strict host-key check
against the job's known_hosts file, public-key login, then either

- `channels`: each of the 8 commands on its own channel, then `cat` of redis.conf on one
  more (9 round trips), or
- `oneexec`: all 8 commands and the `cat` in one remote script (1 round trip),
- `triage`: the shipped triage's reads (its facts script, redis.conf, the running values,
  the overcommit setting) in one script under `sudo -S -k` (the password on stdin): the
  least any tool can do for the triage's host work, knowing ahead what the triage only
  learns on the way (the config path, the port),

and the bind edit computed locally and printed as a unified diff. No templating, no
validation, no rollback, no safety: it only shows what the wire and sshd cost.
JOB.json is written by bench/run.py (hosts with their rendered commands).
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
import socket
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import paramiko

_MARK = "@@redmedic-bench"
FILE_MARK = f"{_MARK} file"
END_MARK = f"{_MARK} end"


@dataclass(frozen=True)
class Outcome:
    host: str
    rcs: list[int]
    diff: str
    error: str = ""


def _connect(
    host: dict[str, Any], known: paramiko.HostKeys, key: paramiko.PKey
) -> paramiko.Transport:
    sock = socket.create_connection((host["address"], host["port"]), timeout=10.0)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    transport = paramiko.Transport(sock)
    transport.start_client(timeout=10.0)
    label = f"[{host['address']}]:{host['port']}" if host["port"] != 22 else host["address"]
    offered = transport.get_remote_server_key()
    expected = known.lookup(label)
    if expected is None or expected.get(offered.get_name()) != offered:
        transport.close()
        raise paramiko.SSHException(f"host key for {label} is unknown or changed")
    transport.auth_publickey(host["user"], key)
    return transport


def _exec(transport: paramiko.Transport, command: str, stdin: bytes = b"") -> tuple[int, bytes]:
    channel = transport.open_session()
    try:
        channel.exec_command(command)
        if stdin:
            channel.sendall(stdin)
        channel.shutdown_write()
        out = channel.makefile("rb").read()
        channel.makefile_stderr("rb").read()
        return channel.recv_exit_status(), out
    finally:
        channel.close()


def _edit(text: str, regexp: str, line: str) -> str:
    """Replace the last line matching `regexp` (Ansible lineinfile / redmedic file_line)."""
    lines = text.splitlines(keepends=True)
    pattern = re.compile(regexp)
    hits = [i for i, old in enumerate(lines) if pattern.search(old.rstrip("\n"))]
    if hits:
        lines[hits[-1]] = line + "\n"
    else:
        lines.append(line + "\n")
    return "".join(lines)


def _diff(path: str, before: str, after: str) -> str:
    return "".join(
        difflib.unified_diff(
            before.splitlines(keepends=True),
            after.splitlines(keepends=True),
            fromfile=f"{path} (before)",
            tofile=f"{path} (after)",
        )
    )


def _one_script(commands: list[str], conf: str) -> str:
    parts = []
    for index, command in enumerate(commands):
        parts.append(f"echo '{_MARK} {index}'; ( {command} ) 2>&1; echo \"{_MARK} rc $?\"")
    parts.append(f"echo '{_MARK} file'; cat -- {conf_quoted(conf)}")
    return "\n".join(parts) + "\n"


def conf_quoted(path: str) -> str:
    return "'" + path.replace("'", "'\\''") + "'"


def run_host(
    host: dict[str, Any],
    job: dict[str, Any],
    mode: str,
    known: paramiko.HostKeys,
    key: paramiko.PKey,
) -> Outcome:
    try:
        transport = _connect(host, known, key)
    except (OSError, paramiko.SSHException, EOFError) as exc:
        return Outcome(host["name"], [], "", f"connect: {exc}")
    try:
        if mode == "triage":
            stdin = (host["become_password"] + "\n" + host["script"]).encode()
            rc, out = _exec(transport, "sudo -S -k -p '' /bin/sh -s", stdin)
            raw = out.partition(f"{FILE_MARK}\n".encode())[2].partition(END_MARK.encode())[0]
            rcs = [rc]
        elif mode == "channels":
            rcs = [_exec(transport, command)[0] for command in host["commands"]]
            rc, raw = _exec(transport, f"cat -- {conf_quoted(host['conf'])}")
            rcs.append(rc)
        else:
            rc, out = _exec(transport, _one_script(host["commands"], host["conf"]))
            head, _, raw = out.partition(f"{_MARK} file\n".encode())
            rcs = [int(m) for m in re.findall(rf"{_MARK} rc (\d+)".encode(), head)] + [rc]
    finally:
        transport.close()
    before = raw.decode("utf-8", "surrogateescape")
    after = _edit(before, job["edit"]["regexp"], job["edit"]["line"])
    return Outcome(host["name"], rcs, _diff(host["conf"], before, after))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("job", help="job file written by bench/run.py")
    parser.add_argument("--mode", choices=("channels", "oneexec", "triage"), default="channels")
    parser.add_argument("--forks", type=int, default=50)
    args = parser.parse_args()
    with open(args.job) as handle:
        job = json.load(handle)
    known = paramiko.HostKeys(job["known_hosts"])
    key = paramiko.PKey.from_path(job["key"])
    hosts = job["hosts"]
    failed = 0
    with ThreadPoolExecutor(max_workers=max(1, min(args.forks, len(hosts)))) as pool:
        outcomes = pool.map(lambda h: run_host(h, job, args.mode, known, key), hosts)
        for outcome in outcomes:
            if outcome.error or any(outcome.rcs):
                failed += 1
                print(f"{outcome.host}: FAILED {outcome.error or outcome.rcs}")
                continue
            print(f"{outcome.host}: {len(outcome.rcs)} commands ok; would change:")
            sys.stdout.write(outcome.diff)
    print(f"{len(hosts) - failed} ok, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
