"""The shell behind a guarded restart: ask the running server what a restart costs, then
save, restart and prove the keyspace came back.

Two scripts, each one round trip. `ask_script` finds the running redis-server (the unit's
main PID; without systemd the one in the config's pidfile, else the trusted `redis-server`
on the configured port, else the first), asks it on its own TCP listener (else where the
configuration says) with each candidate password in turn, and reads INFO and `CONFIG GET
save` from the first that answers. `restart_script` is the
planned change: BGSAVE and wait until it completed (when RDB is the only persistence and
keys exist), count the keys, restart, wait until the restarted server — asked where its
configuration now says, with the password it now has — answers with `loading:0`, and count
again: fewer keys than before, less those that had a TTL and those its maxmemory policy
evicted since it started (`evicted_keys`: a fix of that policy may evict at once), is a
failure.

Passwords travel on stdin (one per line, into `REDISCLI_AUTH` for a single redis-cli),
never on a command line. Every wait is bounded by one deadline for the whole script, sized
for a busy machine; each redis-cli call has its own 10 s bound.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from redmedic.connection.scripts import with_stdin
from redmedic.redis.facts import LISTENER_FN, TRUSTED_FN, parse_info

# Shell shared by both scripts: C messages, the sbin tools, and redis-cli with a password
# from a variable (`ask PASSWORD TARGET... COMMAND...`: stdout only, the reply).
_COMMON = r"""LC_ALL=C; export LC_ALL; PATH=$PATH:/usr/sbin:/sbin; export PATH
ask() {
  pw=$1; shift
  if [ -n "$pw" ]; then REDISCLI_AUTH=$pw timeout 10 redis-cli "$@" </dev/null 2>/dev/null
  else env -u REDISCLI_AUTH timeout 10 redis-cli "$@" </dev/null 2>/dev/null; fi
}
"""

# Header: M, unit, n (passwords on stdin), planned (redis-cli target words from the config),
# pidfile (the config's).
_ASK = r"""i=1; while [ "$i" -le "$n" ]; do IFS= read -r "pw$i" || :; i=$((i + 1)); done
sec() { printf '\n%s%s\n' "$M" "$1"; }
if [ -d /run/systemd/system ]; then
  init=systemd
  pid=$(systemctl show -p MainPID --value -- "$unit" 2>/dev/null)
else
  init=other; pid=
fi
listen=$(ss -Hltnp 2>/dev/null)
if [ "$init" = other ]; then
  # the config's pidfile, else the trusted redis-server on the configured port, else the first
  p=$(cat -- "${pidfile:-/nonexistent}" 2>/dev/null)
  case $p in ''|*[!0-9]*) ;; *) [ -d "/proc/$p" ] && trusted "$p" && pid=$p ;; esac
  [ -n "$pid" ] || for p in $(pgrep -x redis-server 2>/dev/null); do
    trusted "$p" || continue
    [ -n "$pid" ] || pid=$p
    port=$(best_listener "$p"); port=${port#* }
    case " $planned " in *" -p $port "*) pid=$p; break ;; esac
  done
fi
[ "$pid" = 0 ] && pid=
sec init; printf '%s\n' "$init"
sec pid; printf '%s\n' "$pid"
[ -n "$pid" ] || exit 0
if ! command -v redis-cli >/dev/null 2>&1; then
  sec error; echo 'redis-cli is not installed'; exit 0
fi
own=$(best_listener "$pid")
[ -n "$own" ] && own="-h ${own% *} -p ${own#* }"
error=
for target in "$own" "$planned"; do
  [ -n "$target" ] || continue
  i=1
  while [ "$i" -le "$n" ]; do
    eval "pw=\$pw$i"
    reply=$(ask "$pw" $target PING)
    case $reply in
      PONG|LOADING*)
        sec answered; printf '%s %s\n' "$i" "$target"
        sec info; ask "$pw" $target INFO
        sec save; ask "$pw" $target --raw CONFIG GET save
        exit 0 ;;
      *'max number of clients'*) sec error; printf '%s\n' "$reply"; exit 0 ;;
    esac
    error=${reply:-no answer on $target}
    i=$((i + 1))
  done
done
sec error; printf '%s\n' "$error"
"""

_RESTART = r"""fail() { printf 'redmedic: %s\n' "$1" >&2; exit 1; }
IFS= read -r before_pw || :
IFS= read -r after_pw || :
field() { printf '%s\n' "$1" | tr -d '\r' | sed -n "s/^$2://p"; }
counts() {  # keys and keys with a TTL over every db of INFO keyspace: "KEYS EXPIRES"
  case $1 in *'# Keyspace'*) ;; *) return 0 ;; esac
  printf '%s\n' "$1" | tr -d '\r' | awk -F'[=,:]' '/^db[0-9]+:/ { k += $3; e += $5 }
    END { print k + 0, e + 0 }'
}
deadline=$(( $(date +%s) + wait_s ))
late() { [ "$(date +%s)" -ge "$deadline" ]; }
kept='Redis was not restarted'
if [ "$bgsave" = 1 ]; then
  last=$(field "$(ask "$before_pw" $before INFO persistence)" rdb_last_save_time)
  [ -n "$last" ] || fail "the running Redis did not answer INFO: $kept"
  # a save within this second would not look newer than the last one
  while [ "$(date +%s)" -le "$last" ]; do sleep 1; done
  while :; do
    reply=$(ask "$before_pw" $before BGSAVE)
    case $reply in
      *'Background saving started'*) break ;;
      # someone else's save may predate the last write: wait for it, then save again
      *'already in progress'*)
        late && fail "a background save still runs after ${wait_s} s: $kept" ;;
      *) fail "BGSAVE was refused (${reply:-no answer}): $kept" ;;
    esac
    sleep 1
  done
  while :; do
    p=$(ask "$before_pw" $before INFO persistence)
    if [ "$(field "$p" rdb_bgsave_in_progress)" = 0 ]; then
      status=$(field "$p" rdb_last_bgsave_status); saved=$(field "$p" rdb_last_save_time)
      if [ "$status" = ok ] && [ "${saved:-0}" -gt "$last" ]; then break; fi
      fail "BGSAVE failed (rdb_last_bgsave_status:${status:-?}; see the Redis log): $kept"
    fi
    late && fail "BGSAVE did not finish within ${wait_s} s: $kept"
    sleep 1
  done
  echo "redmedic: BGSAVE completed"
fi
before_counts=
[ "$count" = 1 ] && before_counts=$(counts "$(ask "$before_pw" $before INFO keyspace)")
"""

_AFTER = r"""while :; do
  p=$(ask "$after_pw" $after INFO persistence)
  [ "$(field "$p" loading)" = 0 ] && break
  late && fail "the restarted Redis did not answer with loading:0 within ${wait_s} s ($after)"
  sleep 1
done
echo "redmedic: Redis answers again ($after)"
if [ -n "$before_counts" ]; then
  k0=${before_counts% *}; e0=${before_counts#* }
  # one INFO: the keys and those the maxmemory policy evicted since the start, at one moment
  now=$(ask "$after_pw" $after INFO)
  k1=$(counts "$now"); k1=${k1% *}; evicted=$(field "$now" evicted_keys)
  k1=${k1:-0}; evicted=${evicted:-0}
  if [ $((k1 + evicted)) -lt $((k0 - e0)) ]; then
    fail "only $k1 of $k0 keys came back after the restart ($e0 had a TTL, $evicted evicted)"
  fi
  echo "redmedic: $k1 of $k0 keys back after the restart ($evicted evicted by maxmemory)"
fi
"""


@dataclass(frozen=True)
class Server:
    """How redis-cli on the host reaches one server: its target words and the password."""

    target: tuple[str, ...]
    password: str = field(default="", repr=False)

    @property
    def words(self) -> str:
        return " ".join(shlex.quote(word) for word in self.target)


@dataclass(frozen=True)
class Running:
    """What `ask_script` found: the init system, the server's PID (None: not running),
    the server that answered (None: none did, `error` says why), its INFO and `save`."""

    init: str  # "systemd" or "other"
    pid: int | None
    server: Server | None
    info: Mapping[str, Any]
    save: str | None
    error: str


def _header(values: Mapping[str, str]) -> str:
    return "".join(f"{name}={shlex.quote(value)}\n" for name, value in values.items())


def ask_script(
    marker: str, unit: str, planned: Server, passwords: Sequence[str], pidfile: str = ""
) -> str:
    """The one round trip of the diagnose; `passwords` go on stdin (`ask_stdin`)."""
    header = {
        "M": marker,
        "unit": unit,
        "n": str(len(passwords)),
        "planned": planned.words,
        "pidfile": pidfile,
    }
    return _header(header) + _COMMON + TRUSTED_FN + LISTENER_FN + _ASK


def ask_stdin(passwords: Sequence[str]) -> bytes:
    return "".join(f"{password}\n" for password in passwords).encode()


def parse_ask(sections: Mapping[str, str], passwords: Sequence[str]) -> Running:
    """`ask_script`'s sections (split with its marker) as what it found."""
    pid_text = sections.get("pid", "").strip()
    pid = int(pid_text) if pid_text.isdigit() else None
    answered = sections.get("answered", "").split()
    server = None
    if answered and answered[0].isdigit():
        server = Server(tuple(answered[1:]), passwords[int(answered[0]) - 1])
    save = None  # CONFIG GET failed (e.g. a renamed CONFIG): the config file's is used
    lines = sections.get("save", "").replace("\r", "").split("\n")
    if lines[0] == "save":  # an empty value is the last line, trimmed with the section
        save = lines[1] if len(lines) > 1 else ""
    error = sections.get("error", "").strip()
    if pid is not None and server is None and not error:
        error = "no answer"
    return Running(
        init=sections.get("init", "").strip() or "other",
        pid=pid,
        server=server,
        info=parse_info(sections.get("info", "")) if server else {},
        save=save,
        error=error,
    )


def restart_script(
    headline: str,
    restart: str,
    *,
    before: Server | None,
    after: Server,
    bgsave: bool,
    count: bool,
    wait_s: int,
) -> str:
    """The planned change: (BGSAVE,) count, `restart`, wait for loading:0, count again.

    `before` is the running server (None: not running or not answering, so nothing is
    saved or counted); `count` compares the keys before and after (not when nothing
    persists them: they are lost by consent); `headline` is the script's first line, what
    the plan shows first.
    The passwords are a here-document on the script's stdin: masked wherever it is shown.
    """
    header = {
        "before": before.words if before else "",
        "after": after.words,
        "bgsave": "1" if bgsave and before else "0",
        "count": "1" if count and before else "0",
        "wait_s": str(wait_s),
    }
    restarting = f"{{ {restart}\n}} || fail 'the restart failed'\n"
    body = _header(header) + _COMMON + _RESTART + restarting + _AFTER
    passwords = f"{before.password if before else ''}\n{after.password}\n"
    return f"# {headline}\n" + with_stdin(body, passwords)
