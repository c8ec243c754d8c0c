"""What a Redis host's state looks like as facts: the one-round-trip gather script and the
pure parsers that turn its sections into the plain dict `redis_facts` registers.

One POSIX sh script (LC_ALL=C) gathers the init system, the Redis unit, the redis-server
process, its config file, listening sockets, open-file limit, `--check-system`, INFO, the
firewall state, memory, kernel settings and the tails of the logs. Each piece is printed
after a marker line carrying a per-run nonce (`connection.scripts.new_marker`, so no log
line can forge a section), and the parsers here turn the sections into the dict later steps
(`redis_triage`, `log_scan`, `when:` expressions) and the diagnosis rules read.

Why the script itself decides things (which unit, which PID, which config file, which
address redis-cli talks to): each decision depends on the answer before it, and asking the
control node between them would cost a round trip each — on a fleet of hundreds of hosts
the round trips are the run time. It also asks a server at maxclients again, for up to 2 s:
the run's own probe from the control machine may hold the one free slot for a moment, and
without INFO the triage cannot size an oom fix's maxmemory.

Secrets: the Redis password travels on stdin into `REDISCLI_AUTH` (never argv, never a
file). Without a password the script takes `requirepass` from the config file it reads.
`cmdline_secrets` and `parse_config_section` name the secrets found, for the masker.
"""

from __future__ import annotations

import itertools
import re
import shlex
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from redmedic.model.plan import Finding
from redmedic.redis import redisconf
from redmedic.redis.live import any_address_bind, parse_version

DEFAULT_CONFIG = "/etc/redis/redis.conf"
DEFAULT_LOG = "/var/log/redis/redis-server.log"
DEFAULT_UNITS = ("redis-server.service", "redis.service")
UNIT_PROPERTIES = (
    "Id",
    "LoadState",
    "ActiveState",
    "SubState",
    "UnitFileState",
    "MainPID",
    "NRestarts",
    "Result",
    "ExecStart",
)
# CONFIG GET names read from the running server (never requirepass/masterauth).
LIVE_CONFIG = (
    "bind",
    "port",
    "protected-mode",
    "maxclients",
    "maxmemory",
    "maxmemory-policy",
    "tcp-backlog",
    "logfile",
    "unixsocket",
)
INFO_SECTIONS = ("server", "clients", "memory", "persistence", "stats", "replication", "keyspace")

# -- the script --------------------------------------------------------------------------

# Log gathering, shared with `log_scan` (it sets the same variables: $logfile, $unit,
# $init, $lines). Kernel lines are filtered to redis-server on the host, so only the few
# relevant lines travel.
LOG_SCRIPT = r"""
sec log-path; printf '%s\n' "$logfile"
sec log
if [ -n "$logfile" ]; then tail -n "$lines" -- "$logfile" 2>&1; fi
sec journal
if [ "$init" = systemd ] && [ -n "$unit" ]; then
  timeout 10 journalctl -u "$unit" -n "$lines" --no-pager -q 2>&1
fi
sec kernel
{ dmesg 2>/dev/null || journalctl -k --no-pager -q 2>/dev/null; } \
  | grep -E 'redis-server' | grep -iE 'oom|out of memory|killed process' | tail -n 50
exit 0
"""

# What every script of ours starts with: C messages to parse, the sbin tools (ss, sysctl,
# ufw) also for a login user whose PATH lacks them, and the section marker function.
# `trusted PID`: may this redis-server's command line pick the config file root reads and
# the password it sends? Only if it runs as root or redis or is the unit's own (its cgroup):
# anyone can start a process called redis-server. Both discovery scripts use it ($unit set).
TRUSTED_FN = r"""trusted() {
  case $(stat -c %U "/proc/$1" 2>/dev/null) in root|redis) return 0;; esac
  [ -n "$unit" ] && grep -q "/${unit%.service}\.service$" "/proc/$1/cgroup" 2>/dev/null
}
"""

# `best_listener PID`: "HOST PORT" of the process's TCP listener a local redis-cli should
# use, from $listen (`ss -Hltnp`): loopback or a wildcard first (asked as 127.0.0.1 or ::1),
# else any address it listens on; nothing when it listens on no TCP port.
LISTENER_FN = r"""best_listener() {
  printf '%s\n' "$listen" | awk -v want="pid=$1," '
    index($0, want) {
      a = $4; n = split(a, parts, ":"); port = parts[n]
      host = substr(a, 1, length(a) - length(port) - 1)
      gsub(/[][]/, "", host); sub(/%.*/, "", host)
      if (host == "0.0.0.0" || host == "*" || host ~ /^127\./) { rank = 0; host = "127.0.0.1" }
      else if (host == "::" || host == "::1") { rank = 1; host = "::1" }
      else rank = 2
      if (best == "" || rank < bestrank) { best = host " " port; bestrank = rank }
    }
    END { if (best != "") print best }'
}
"""

PRELUDE = r"""LC_ALL=C; export LC_ALL; PATH=$PATH:/usr/sbin:/sbin; export PATH
sec() { printf '\n%s%s\n' "$M" "$1"; }
"""

# Everything after the header that sets: M unit_arg config_arg port_arg lines has_pw.
FACTS_SCRIPT = (
    PRELUDE
    + TRUSTED_FN
    + LISTENER_FN
    + r"""pw=
if [ "$has_pw" = 1 ]; then IFS= read -r pw || :; fi
"""
    + r"""
if [ -d /run/systemd/system ]; then init=systemd
elif [ -e /etc/init.d/redis-server ]; then init=sysv
else init=none; fi
sec init; printf '%s\n' "$init"

unit=$unit_arg; ushow=; mainpid=
if [ "$init" = systemd ]; then
  if [ -z "$unit" ]; then
    for u in $default_units; do
      if [ "$(systemctl show -p LoadState --value -- "$u" 2>/dev/null)" = loaded ]; then
        unit=$u; break
      fi
    done
  fi
  if [ -n "$unit" ]; then
    ushow=$(systemctl show -p "$unit_props" -- "$unit" 2>&1)
    mainpid=$(printf '%s\n' "$ushow" | sed -n 's/^MainPID=//p')
  fi
fi
sec unit; printf '%s\n' "$ushow"

listen=$(ss -Hltnp 2>&1)
sec listen; printf '%s\n' "$listen"

untrusted=; seen=' '
consider() {  # $1 pid, $2 source: take it if trusted, else note it (once)
  [ -n "$pid" ] || [ -z "$1" ] && return 0
  case $seen in *" $1 "*) return 0;; esac
  if trusted "$1"; then pid=$1; pid_source=$2; return 0; fi
  seen="$seen$1 "
  untrusted="$untrusted$1 $(stat -c %U "/proc/$1" 2>/dev/null || echo '?')
"
}
pid=; pid_source=
case $mainpid in ''|0) ;; *) pid=$mainpid; pid_source=unit;; esac
consider "$(printf '%s\n' "$listen" | awk -v want=":$port_arg" '
  substr($4, length($4) - length(want) + 1) == want && /"redis-server"/ {
    if (match($0, /pid=[0-9]+/)) { print substr($0, RSTART + 4, RLENGTH - 4); exit }
  }')" ss
for p in $(pgrep -x redis-server 2>/dev/null); do consider "$p" pgrep; done
sec pid; printf '%s %s\n' "$pid" "$pid_source"
sec untrusted; printf '%s' "$untrusted"

cmdline=; exe=
if [ -n "$pid" ]; then
  cmdline=$(tr '\0' '\n' < "/proc/$pid/cmdline" 2>/dev/null)
  exe=$(readlink "/proc/$pid/exe" 2>/dev/null)
fi
sec cmdline; printf '%s\n' "$cmdline"
sec limits
if [ -n "$pid" ]; then grep '^Max open files' "/proc/$pid/limits" 2>&1; fi

# The config file: argument > the server's own INFO (below) > its command line > the
# unit's ExecStart > Debian's default.
conf=; conf_source=
if [ -n "$config_arg" ]; then conf=$config_arg; conf_source=arg; fi
first_file() {
  skip=1
  for a in $1; do
    if [ "$skip" = 1 ]; then skip=0; continue; fi
    case $a in -*) continue;; esac
    if [ -f "$a" ]; then printf '%s\n' "$a"; return 0; fi
  done
  return 1
}
if [ -z "$conf" ] && [ -n "$cmdline" ]; then
  c=$(first_file "$(printf '%s\n' "$cmdline" | tr '\n' ' ')") && { conf=$c; conf_source=cmdline; }
fi
if [ -z "$conf" ] && [ -n "$ushow" ]; then
  argv=$(printf '%s\n' "$ushow" | sed -n 's/^ExecStart=.*argv\[\]=\([^;]*\);.*/\1/p' | head -n 1)
  c=$(first_file "$argv") && { conf=$c; conf_source=unit; }
fi
if [ -z "$conf" ]; then conf=$default_config; conf_source=default; fi

directive() {  # last value of a config directive, outer quotes removed
  [ -r "$conf" ] || return 0
  awk -v name="$1" '
    tolower($1) == name { v = $0; sub(/^[ \t]*[^ \t]+[ \t]*/, "", v); sub(/[ \t\r]+$/, "", v) }
    END {
      if (v ~ /^".*"$/ || v ~ /^\047.*\047$/) v = substr(v, 2, length(v) - 2)
      print v
    }' "$conf" 2>/dev/null
}

# Where redis-cli talks: the server's own listening socket (loopback or wildcard first),
# else its unix socket, else the expected port.
h=127.0.0.1; p=$port_arg; sock=
if [ -n "$pid" ]; then
  best=$(best_listener "$pid")
  if [ -n "$best" ]; then h=${best% *}; p=${best#* }
  else sock=$(directive unixsocket); fi
fi
if [ "$has_pw" != 1 ]; then pw=$(directive requirepass); fi
if [ -n "$pw" ]; then REDISCLI_AUTH=$pw; export REDISCLI_AUTH; fi
pw=
cli() {
  # No server process: nothing to ask (and a stranger on the port may never answer).
  if [ -z "$pid" ]; then echo 'redmedic: no redis-server process'; return 0; fi
  if ! command -v redis-cli >/dev/null 2>&1; then echo 'redmedic: redis-cli not found'; return 0; fi
  # A server at maxclients refuses us while it is full: a slot a client frees within
  # 2 s (the run's own probe from the control machine, say) lets INFO in after all.
  tries=10
  while :; do
    if [ -n "$sock" ]; then out=$(timeout 5 redis-cli -s "$sock" "$@" 2>&1)
    else out=$(timeout 5 redis-cli -h "$h" -p "$p" "$@" 2>&1); fi
    rc=$?
    tries=$((tries - 1))
    case $out in
      *'max number of clients reached'*) [ "$tries" -gt 0 ] && sleep 0.2 && continue;;
    esac
    break
  done
  printf '%s\n' "$out"
  [ "$rc" = 124 ] && echo 'redmedic: redis-cli timed out after 5 s'
  return 0
}
sec cli-target
if [ -n "$sock" ]; then printf 'unix %s\n' "$sock"; else printf '%s %s\n' "$h" "$p"; fi
info=$(cli INFO)
sec info; printf '%s\n' "$info"
live=
case $info in *redis_version:*) live=$(cli CONFIG GET $live_names);; esac
sec live-config; printf '%s\n' "$live"
unset REDISCLI_AUTH

info_conf=$(printf '%s\n' "$info" | tr -d '\r' | sed -n 's/^config_file://p')
if [ -z "$config_arg" ]; then
  if [ -n "$info_conf" ]; then conf=$info_conf; conf_source=info
  elif printf '%s\n' "$info" | grep -q '^redis_version:'; then conf=; conf_source=none; fi
fi
if [ -z "$conf" ]; then conf_status=none
elif [ -r "$conf" ]; then conf_status=read
elif [ -e "$conf" ]; then conf_status=unreadable
else conf_status=absent; fi
sec config-path; printf '%s\n%s\n' "$conf_source $conf_status" "$conf"
sec config; if [ "$conf_status" = read ]; then cat -- "$conf"; fi

sec check-system
# Debian's redis-server is a link to redis-check-rdb, which picks its role by argv[0]:
# run the binary by its redis-server name, beside the running one if possible.
exe=${exe%/*}/redis-server
[ -x "$exe" ] || exe=$(command -v redis-server 2>/dev/null)
if [ -n "$exe" ]; then
  ver=$("$exe" --version 2>/dev/null | sed -n 's/.* v=\([0-9][0-9.]*\).*/\1/p')
  case $ver in
    ''|7.0.0|[0-6].*) printf 'redmedic: unsupported %s\n' "$ver";;
    *) timeout 10 "$exe" --check-system 2>&1;;
  esac
fi
sec binary-version
printf '%s\n' "${ver:-}"

sec ufw
if command -v ufw >/dev/null 2>&1; then
  if grep -qs '^ENABLED=yes' /etc/ufw/ufw.conf; then timeout 10 ufw status verbose 2>&1
  else echo 'Status: inactive'; fi
else echo 'redmedic: absent'; fi
sec firewalld
fw_zone=
if command -v firewall-cmd >/dev/null 2>&1; then
  if [ "$init" = systemd ] && ! systemctl is-active --quiet firewalld 2>/dev/null; then
    echo 'not running'
  else
    st=$(timeout 10 firewall-cmd --state 2>&1); printf '%s\n' "$st"
    [ "$st" = running ] && fw_zone=$(timeout 10 firewall-cmd --list-all 2>&1)
  fi
else echo 'redmedic: absent'; fi
sec firewalld-zone; printf '%s\n' "$fw_zone"
sec firewalld-services
if [ -n "$fw_zone" ]; then
  for d in /etc/firewalld/services /usr/lib/firewalld/services; do
    for f in "$d"/*.xml; do [ -f "$f" ] && grep -H '<port ' "$f"; done
  done | grep -E "port=\"([0-9]+[-:][0-9]+|$port_arg)\""
fi

sec free; free -b 2>&1
sec sysctl; sysctl vm.overcommit_memory net.core.somaxconn 2>&1
sec proc-sys; awk '$2 == "/proc/sys" || $2 == "/proc/sys/vm" { print $2, $4 }' /proc/mounts 2>&1
sec thp; cat /sys/kernel/mm/transparent_hugepage/enabled 2>&1

logfile=$(printf '%s\n' "$live" | awk 'prev == "logfile" { print; exit } { prev = $0 }')
[ -z "$logfile" ] && logfile=$(directive logfile)
[ -z "$logfile" ] && [ "$conf_status" != read ] && logfile=$default_log
"""
    + LOG_SCRIPT
)


def facts_script(
    marker: str,
    *,
    unit: str | None,
    config: str | None,
    port: int,
    lines: int,
    has_password: bool,
) -> str:
    """The whole one-round-trip script with its arguments quoted into a header."""
    header = {
        "M": marker,
        "unit_arg": unit or "",
        "config_arg": config or "",
        "port_arg": str(port),
        "lines": str(lines),
        "has_pw": "1" if has_password else "0",
        "default_units": " ".join(DEFAULT_UNITS),
        "unit_props": ",".join(UNIT_PROPERTIES),
        "live_names": " ".join(LIVE_CONFIG),
        "default_config": DEFAULT_CONFIG,
        "default_log": DEFAULT_LOG,
    }
    return shell_header(header) + FACTS_SCRIPT


def shell_header(values: Mapping[str, str]) -> str:
    """`name='value'` lines that hand a script its arguments, each safely quoted."""
    return "".join(f"{name}={shlex.quote(value)}\n" for name, value in values.items())


# -- pure parsers ------------------------------------------------------------------------


def as_int(value: Any) -> int | None:
    """An integer from a fact or a field of command output; None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    try:
        return int(str(value).strip())
    except ValueError:
        return None


def parse_unit(text: str) -> dict[str, Any] | None:
    """`systemctl show -p ...` key=value lines as the unit's state; None without a unit."""
    values = dict(line.split("=", 1) for line in text.splitlines() if "=" in line)
    if not values.get("Id"):
        return None
    return {
        "name": values.get("Id", ""),
        "load_state": values.get("LoadState", ""),
        "active_state": values.get("ActiveState", ""),
        "sub_state": values.get("SubState", ""),
        "unit_file_state": values.get("UnitFileState", ""),
        "main_pid": as_int(values.get("MainPID")) or None,
        "n_restarts": as_int(values.get("NRestarts")),
        "result": values.get("Result", ""),
        "exec_start": _exec_start_argv(values.get("ExecStart", "")),
    }


def _exec_start_argv(text: str) -> str:
    match = re.search(r"argv\[\]=([^;]*);", text)
    return match.group(1).strip() if match else text.strip()


_SS_PROCESS = re.compile(r'\("(?P<name>[^"]+)",pid=(?P<pid>\d+)')


def parse_listening(text: str) -> list[dict[str, Any]]:
    """`ss -Hltnp` lines as sockets: address, port, and owning process when visible.

    `process`/`pid` are None where ss could not see the owner (not root).
    """
    sockets = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 5 or fields[0] != "LISTEN":
            continue
        address, _, port = fields[3].rpartition(":")
        owner = _SS_PROCESS.search(line)
        sockets.append(
            {
                "address": address.strip("[]").split("%")[0],
                "port": as_int(port),
                "process": owner.group("name") if owner else None,
                "pid": int(owner.group("pid")) if owner else None,
            }
        )
    return sockets


def redis_sockets(sockets: Iterable[Mapping[str, Any]], pid: int | None) -> list[dict[str, Any]]:
    """The listening sockets of the Redis process (by PID; by name when the PID is unknown)."""
    if pid is not None:
        return [dict(s) for s in sockets if s.get("pid") == pid]
    return [dict(s) for s in sockets if s.get("process") == "redis-server"]


def parse_open_files(text: str) -> dict[str, int | None] | None:
    """The `Max open files` line of /proc/PID/limits; None values mean unlimited."""
    match = re.match(r"Max open files\s+(\S+)\s+(\S+)", text.strip())
    if not match:
        return None
    soft, hard = match.groups()
    return {"soft": as_int(soft), "hard": as_int(hard)}


def parse_info(text: str) -> dict[str, Any]:
    """redis-cli INFO output: the kept sections' fields, or why there were none.

    `answered` is True when a Redis server replied at all (also with NOAUTH or LOADING):
    the host-local vantage point reaches it.
    """
    text = text.replace("\r", "")
    fields: dict[str, dict[str, Any]] = {}
    current: str | None = None
    for line in text.splitlines():
        if line.startswith("# "):
            current = line[2:].strip().lower()
            continue
        if current in INFO_SECTIONS and ":" in line:
            key, _, value = line.partition(":")
            fields.setdefault(current, {})[key] = as_int(value) if _is_int(value) else value
    if fields:
        return {"answered": True, "error": None, **{s: fields.get(s, {}) for s in INFO_SECTIONS}}
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    error = " / ".join(lines) or "no reply"
    unanswered = ("Could not connect", "redmedic:", "Connection refused")
    return {"answered": bool(lines) and not any(m in error for m in unanswered), "error": error}


def _is_int(value: str) -> bool:
    return bool(re.fullmatch(r"-?(0|[1-9]\d*)", value.strip()))


def parse_config_get(text: str) -> dict[str, str]:
    """CONFIG GET's alternating name/value lines; empty when the command failed."""
    lines = text.replace("\r", "").split("\n")
    if not lines or lines[0] not in LIVE_CONFIG:
        return {}
    return dict(zip(lines[0::2], lines[1::2], strict=False))


def parse_check_system(text: str) -> dict[str, Any] | None:
    """`redis-server --check-system`: {check: OK/WARNING/...} plus the warnings' text.

    None when the server version has no `--check-system` (before 7.0.1).
    """
    if not text.strip() or text.startswith("redmedic: unsupported"):
        return None
    checks: dict[str, str] = {}
    details: list[str] = []
    for line in text.splitlines():
        match = re.match(r"\[(?P<name>[^\]]+)\]\.\.\.(?P<status>\w+)", line)
        if match:
            checks[match.group("name")] = match.group("status")
        elif line.strip():
            details.append(line.strip())
    return {"checks": checks, "details": details}


def parse_free(text: str) -> dict[str, int | None]:
    """`free -b`: total/used/free/available memory and swap, in bytes."""
    found: dict[str, int | None] = {}
    for line in text.splitlines():
        cells = line.split()
        if cells[:1] == ["Mem:"] and len(cells) >= 7:
            found.update(
                total=as_int(cells[1]), used=as_int(cells[2]), free=as_int(cells[3]),
                available=as_int(cells[6]),
            )  # fmt: skip
        elif cells[:1] == ["Swap:"] and len(cells) >= 3:
            found.update(swap_total=as_int(cells[1]), swap_used=as_int(cells[2]))
    return found


def parse_kernel(sysctl_text: str, thp_text: str, mounts_text: str = "") -> dict[str, Any]:
    """vm.overcommit_memory, net.core.somaxconn, the THP mode (the bracketed word), and
    whether the running value of vm.* can change here: `overcommit_settable` is False where
    /proc/sys(/vm) is mounted read-only (a container), None where the mounts were not read."""
    values = {}
    for line in sysctl_text.splitlines():
        key, sep, value = line.partition(" = ")
        if sep:
            values[key.strip()] = as_int(value)
    thp = re.search(r"\[(\w+)\]", thp_text)
    mounts = {}  # the last mount of a path is the one in force
    for line in mounts_text.splitlines():
        path, _, options = line.partition(" ")
        if path.startswith("/proc/sys"):
            mounts[path] = options.split(",")
    deciding = mounts.get("/proc/sys/vm") or mounts.get("/proc/sys")
    return {
        "overcommit_memory": values.get("vm.overcommit_memory"),
        "somaxconn": values.get("net.core.somaxconn"),
        "thp": thp.group(1) if thp else None,
        "overcommit_settable": None if deciding is None else "ro" not in deciding,
    }


def parse_config_section(path_text: str, content: str) -> tuple[dict[str, Any], list[str]]:
    """Which config file, how it was found, whether it was read, its effective directives
    (secrets masked); and the secrets it holds, for the masker.

    Included files are not read (that would cost another round trip): `includes` lists
    them so a reader knows the directives may be incomplete.
    """
    first, _, path = path_text.partition("\n")
    source, _, status = first.partition(" ")
    facts: dict[str, Any] = {"path": path or None, "source": source, "status": status}
    if status != "read":
        return {**facts, "directives": {}, "includes": [], "errors": []}, []
    parsed = redisconf.parse(content, path)
    effective = redisconf.Config(path, {path: parsed}).effective()
    found = [
        secret
        for name, value in effective.items()
        for source_line in value.sources
        for secret in redisconf.secrets_in(name, source_line.args)
    ]
    facts |= {
        "directives": redisconf.facts_view(effective),
        "includes": redisconf.includes_of(parsed),
        "errors": [str(e) for e in parsed.errors],
    }
    return facts, found


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def parse_logs(sections: Mapping[str, str]) -> dict[str, Any]:
    """The log sections shared with `log_scan`: file path and tail, journal, kernel lines."""
    return {
        "log": {"path": sections.get("log-path", "").strip() or None,
                "lines": _lines(sections.get("log", ""))},
        "journal": _lines(sections.get("journal", "")),
        "kernel_oom": _lines(sections.get("kernel", "")),
    }  # fmt: skip


def untrusted_findings(untrusted: Iterable[Mapping[str, Any]]) -> list[Finding]:
    """One finding per redis-server process discovery would not trust: the operator should
    know a stranger's process is there, and that its config file and password were not used."""
    return [
        Finding(
            "untrusted-process",
            f"redis-server pid {p['pid']} runs as {p['user']}, not as redis or the unit: "
            "ignored (its config file is not read or edited, no password is sent to it)",
            (f"/proc/{p['pid']}: owner {p['user']}",),
            fixable=False,
        )
        for p in untrusted
    ]


def parse_untrusted(text: str) -> list[dict[str, Any]]:
    """The redis-server processes discovery ignored: [{pid, user}] (see `trusted()`)."""
    found = []
    for line in _lines(text):
        pid, _, user = line.partition(" ")
        if as_int(pid) is not None:
            found.append({"pid": as_int(pid), "user": user or "?"})
    return found


def parse_sections(
    sections: Mapping[str, str], firewall: Mapping[str, Any]
) -> tuple[dict[str, Any], list[str]]:
    """All facts from the script's sections (see the `redis_facts` step for the keys), and
    the secrets found on the way (config passwords, command-line passwords). Pure.

    `firewall` is the firewall's verdict on the port clients expect, made from the same
    sections by the firewall's own rule model (so triage and fix never disagree).
    """
    config, secrets_found = parse_config_section(
        sections.get("config-path", ""), sections.get("config", "")
    )
    pid_text = sections.get("pid", "").split()
    pid = as_int(pid_text[0]) if pid_text else None
    sockets = parse_listening(sections.get("listen", ""))
    cmdline = _lines(sections.get("cmdline", ""))
    info = parse_info(sections.get("info", ""))
    # The running server's version, else the installed binary's (a stopped Redis starts it).
    version = parse_version(
        (info.get("server") or {}).get("redis_version")
        or sections.get("binary-version", "").strip()
    )
    facts = {
        "init": sections.get("init", "none").strip() or "none",
        "unit": parse_unit(sections.get("unit", "")),
        "pid": pid,
        "pid_source": pid_text[1] if len(pid_text) > 1 else None,
        "untrusted": parse_untrusted(sections.get("untrusted", "")),
        "cmdline": cmdline,
        "listening": sockets,
        "redis_listening": redis_sockets(sockets, pid),
        "max_open_files": parse_open_files(sections.get("limits", "")),
        "config": config,
        "cli_target": sections.get("cli-target", "").strip(),
        "info": info,
        "binary_version": sections.get("binary-version", "").strip() or None,
        "any_address_bind": any_address_bind(version),
        "live_config": parse_config_get(sections.get("live-config", "")),
        "check_system": parse_check_system(sections.get("check-system", "")),
        "firewall": dict(firewall),
        "memory": parse_free(sections.get("free", "")),
        "kernel": parse_kernel(
            sections.get("sysctl", ""), sections.get("thp", ""), sections.get("proc-sys", "")
        ),
        **parse_logs(sections),
    }
    return facts, secrets_found + cmdline_secrets(cmdline)


# -- secrets -----------------------------------------------------------------------------


def cmdline_secrets(argv: Iterable[str]) -> list[str]:
    """Values following `--requirepass`/`--masterauth` on a redis-server command line."""
    args = list(argv)
    return [
        value
        for flag, value in itertools.pairwise(args)
        if flag.lstrip("-").lower() in redisconf.SECRET_DIRECTIVES
    ]


def mask_values(value: Any, mask: Callable[[str], str]) -> Any:
    """`value` with `mask` applied to every string inside it (dicts, lists, scalars)."""
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, Mapping):
        return {k: mask_values(v, mask) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mask_values(v, mask) for v in value]
    return value


# -- the step ----------------------------------------------------------------------------


def summarize(facts: Mapping[str, Any]) -> str:
    """One line for the report: unit state, PID, sockets, config file."""
    parts = []
    unit = facts.get("unit")
    if unit:
        parts.append(f"{unit['name']} {unit['active_state']}/{unit['sub_state']}")
    pid = facts.get("pid")
    parts.append(f"redis-server pid {pid}" if pid else "no redis-server process")
    sockets = facts.get("redis_listening") or []
    listening = ", ".join(f"{s['address']}:{s['port']}" for s in sockets)
    parts.append(f"listening {listening}" if listening else "not listening on TCP")
    config = facts.get("config") or {}
    if config.get("path"):
        parts.append(f"config {config['path']} ({config.get('status')})")
    else:
        parts.append("no config file")
    return "; ".join(parts)
