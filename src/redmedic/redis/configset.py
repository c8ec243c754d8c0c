"""The shell that sets redis.conf values on the running Redis (CONFIG SET) and proves it.

Each script is one command for a `CommandChange`: it finds where Redis answers, sends every
command to one redis-cli session on its stdin (a here-document), then compares what Redis
says with what redis.conf now says and exits non-zero when they differ, so the executor
rolls the host back. Why this shape:

- Secrets never reach a process list. The script itself travels on the connection's
  stdin; redis-cli gets the password through REDISCLI_AUTH (its environment, readable by
  its owner and root only) and the commands, `CONFIG SET requirepass ...` included, on its
  stdin. argv holds only connection arguments and `PING`.
- One session for all the directives, `requirepass` last: the session stays authenticated
  after the password changes, and stays connected after `port` or `bind` change (Redis
  only reopens its listening sockets), so the CONFIG GETs that follow prove both.
- Where Redis answers is not known for sure when the plan is made: an earlier step of the
  same run may have moved the port live (or not, when it needed a restart). So each script
  tries candidate endpoints in order (`Endpoint`), each with its own password, and uses the
  first that answers PING (a read sends its PING in the same session: `_read`). While
  every client slot is taken (maxclients reached) it waits for one (clients come and go)
  for up to ~10 s before giving up.
- A session that fails half-way sets back what it had already set, so a refused value
  leaves neither layer changed (the file edit is undone by the executor's rollback).
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from redmedic.redis import redisconf

_CLI_TIMEOUT_S = 10
_BUSY_TRIES = 50  # x 0.2 s: how long to wait for a free client slot
_END = "REDMEDIC_END"  # here-document delimiter: every line before it starts with a command
_GETS = "@gets"  # echoed between the CONFIG SETs and the CONFIG GETs: keeps their replies apart


@dataclass(frozen=True)
class Endpoint:
    """Where redis-cli reaches one server (`-h H -p P` or `-s SOCKET`) and its password."""

    args: tuple[str, ...]
    password: str = ""

    @classmethod
    def of(cls, config: Mapping[str, redisconf.Effective]) -> Endpoint | None:
        """The endpoint a configuration describes; None when it listens on TLS only."""
        target = live_target(config)
        if target is None:
            return None
        password = config["requirepass"].value if "requirepass" in config else ""
        return cls(tuple(target), password)

    @property
    def shown(self) -> str:
        return self.args[1] if self.args[0] == "-s" else f"{self.args[1]}:{self.args[3]}"


def live_target(config: Mapping[str, redisconf.Effective]) -> list[str] | None:
    """redis-cli's connection arguments for the server this config describes, or None
    when it listens on TLS only (redis-cli would need certificates).

    A wildcard bind is reached on loopback; otherwise the first bound address, which the
    host reaches too, so a new `bind` without loopback still lets the undo connect."""
    port_value = config["port"].value if "port" in config else "6379"
    if port_value == "0":
        socket_path = config["unixsocket"].value if "unixsocket" in config else ""
        return ["-s", socket_path] if socket_path else None
    host = "127.0.0.1"
    if "bind" in config:
        first = config["bind"].args[0].lstrip("-") if config["bind"].args else "*"
        host = {"*": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::*": "::1", "::": "::1"}.get(
            first, first
        )
    return ["-h", host, "-p", port_value]


def endpoints(*choices: Endpoint | None) -> list[Endpoint]:
    """The distinct endpoints among `choices`, in order (None: a TLS-only config, left out)."""
    found: list[Endpoint] = []
    for choice in choices:
        if choice is not None and choice not in found:
            found.append(choice)
    return found


def every_pairing(*choices: Endpoint | None) -> list[Endpoint]:
    """Each address with each password: after a half-applied session Redis may listen on
    the new port with the old password, or the other way round."""
    known = endpoints(*choices)
    return endpoints(*(Endpoint(a.args, p.password) for a in known for p in known))


def cli_command(name: str, args: Sequence[str]) -> str:
    """One redis-cli input line (`CONFIG SET bind "0.0.0.0 -::*"`): redis-cli splits its
    input lines the way Redis splits redis.conf lines, so the same quoting holds."""
    return " ".join([name, *(redisconf.format_arg(a) for a in args)])


_PRELUDE = f"""\
LC_ALL=C; export LC_ALL
unset REDISCLI_AUTH
nl='
'
command -v redis-cli >/dev/null 2>&1 || {{ @NO_CLI@; }}
reach() {{
  n=0
  while :; do
    busy=
    for c in "$@"; do
      a=$("$c" PING 2>&1)
      case $a in PONG|*"$nl"PONG) echo "$c"; return 0 ;; *'max number of clients'*) busy=1 ;; esac
    done
    if [ -z "$busy" ] || [ "$n" -ge {_BUSY_TRIES} ]; then
      printf '%s' "$a" | tr '\\n' ' '; return 1
    fi
    n=$((n + 1)); sleep 0.2
  done
}}
got() {{ printf '%s\\n' "$gets" | sed -n "$1p"; }}
"""
_NO_CLI = "redis-cli is not installed"


def _prelude(no_cli: str = f"echo '{_NO_CLI}' >&2; exit 1") -> str:
    """Shared shell: `reach` (the first endpoint that answers), `got N` (line N of $gets)."""
    return _PRELUDE.replace("@NO_CLI@", no_cli)


def _clis(group: str, found: Sequence[Endpoint]) -> tuple[str, str]:
    """(shell functions, one per endpoint, named `<group><n>`; their names, space-separated)."""
    lines, names = [], []
    for n, endpoint in enumerate(found, start=1):
        name = f"{group}{n}"
        auth = f"REDISCLI_AUTH={shlex.quote(endpoint.password)} " if endpoint.password else ""
        args = " ".join(shlex.quote(a) for a in endpoint.args)
        lines.append(
            f'{name}() {{ {auth}timeout {_CLI_TIMEOUT_S} redis-cli {args} --raw "$@"; }}\n'
        )
        names.append(name)
    return "".join(lines), " ".join(names)


def _reach(group: str, found: Sequence[Endpoint], then: str) -> str:
    """Set `$c` to the first of `found` that answers; else `then` (a command list) runs
    with `$fail` saying where Redis was asked and its last answer."""
    functions, names = _clis(group, found)
    return functions + _reach_call(names, found, then)


def _reach_call(names: str, found: Sequence[Endpoint], then: str) -> str:
    where = shlex.quote(f"Redis at {', '.join(dict.fromkeys(e.shown for e in found))}: ")
    return (
        f"c=$(reach {names}) || {{\n"
        f"  case $c in 'Could not connect'*) fail=$c ;; *) fail={where}${{c:-no answer}} ;; esac\n"
        f"  {then}\n}}\n"
    )


def _session(commands: Sequence[str], cli: str = '"$c"') -> str:
    lines = "".join(f"{c}\n" for c in commands)
    return f"out=$({cli} <<'{_END}'\n{lines}{_END}\n)\n"


def _read(group: str, found: Sequence[Endpoint], commands: Sequence[str], then: str) -> str:
    """Set `$out` to what the first of `found` that answers says to `commands`; else as
    `_reach` says. For reads only.

    Why: a redis-cli costs the host ~6 ms of CPU (its start, its libraries), and `_reach`
    then `_session` start two. Here each endpoint gets one session that begins with PING;
    the first whose answer begins with PONG is the one. Where none does (refused, a wrong
    password, busy), `_reach` and `_session` run as before, so the waiting while every
    client slot is taken and the text of the failure are theirs. A try's stderr is read
    with its answers, so what a place that failed said never reaches the script's stderr
    (and what redis-cli says there after a PONG lands beside the answers). Not for writes: a
    session's commands run even where its PING failed (a server still loading its data
    refuses PING but takes CONFIG SET), and a write must go where PING answered.
    """
    functions, names = _clis(group, found)
    return (
        functions
        + f"c=\nfor a in {names}; do\n"
        + _session(["PING", *commands], '"$a" 2>&1')
        + '  case $out in PONG|PONG"$nl"*) c=$a; out=${out#PONG}; out=${out#"$nl"}; break ;; esac\n'
        + "done\n"
        + 'if [ -z "$c" ]; then\n'
        + _reach_call(names, found, then)
        + _session(commands)
        + "fi\n"
    )


def _shown(name: str, value: str) -> str:
    return " ".join(redisconf.masked_args(name, [value]))


def set_script(
    title: str,
    at: Sequence[Endpoint],
    values: Sequence[tuple[str, str]],
    *,
    back: Sequence[tuple[str, str]] = (),
    back_at: Sequence[Endpoint] = (),
) -> str:
    """CONFIG SET each (name, value) in one session, then CONFIG GET each: exit 0 only when
    every value runs as given. `values` are in CONFIG GET's form (`live.running_form`).

    On a failure, the names already set are set back to their `back` value (same order
    as `values`), connecting at `back_at`. `title` is the script's first line (a comment),
    what the plan shows first.
    """
    sets = [cli_command("CONFIG SET", [name, value]) for name, value in values]
    gets = [cli_command("CONFIG GET", [name]) for name, _ in values]
    want = "\n".join(["OK"] * len(values) + [_GETS] + [line for pair in values for line in pair])
    checks = []
    for n, (name, value) in enumerate(values, start=1):
        wrong = (
            f"'running {name} is not what redis.conf says'"
            if redisconf.secrets_in(name, [value])
            else f'"running {name} is $(got {2 * n}), redis.conf says "'
            + shlex.quote(_shown(name, value))
        )
        checks.append(f'[ "$(got {2 * n})" = {shlex.quote(value)} ] || echo {wrong} >&2\n')
    revert = ""
    if back:
        undo = "".join(
            f'[ "$(got {2 * n})" = {shlex.quote(value)} ] && '
            f'r={shlex.quote(cli_command("CONFIG SET", pair))}"$nl$r"\n'
            for n, ((_, value), pair) in enumerate(zip(values, back, strict=True), start=1)
        )
        revert = (
            "r=\n"
            + undo
            + 'if [ -n "$r" ]; then\n'
            + _reach("back", back_at, 'echo "$fail" >&2; exit 1')
            + 'printf \'%s\\n\' "$r" | "$c" >/dev/null\n'
            + "echo 'the values already set were set back' >&2\n"
            + "fi\n"
        )
    return (
        f"# {title}\n"
        + _prelude()
        + _reach("at", at, 'echo "$fail" >&2; exit 1')
        + _session([*sets, cli_command("ECHO", [_GETS]), *gets])
        + f'[ "$out" = {shlex.quote(want)} ] && exit 0\n'
        + f"printf '%s\\n' \"$out\" | sed '/^{_GETS}$/,$d' | grep -v -e '^OK$' -e '^$' >&2\n"
        + f"gets=$(printf '%s\\n' \"$out\" | sed '1,/^{_GETS}$/d')\n"
        + "".join(checks)
        + revert
        + "exit 1\n"
    )


def read_script(at: Sequence[Endpoint], names: Sequence[str], marker: str) -> str:
    """The running value of each name and INFO server, in one session, then the process's
    open-file limits: sections (read back with `split_sections`) named after each name,
    `@version`, `@limits`, or `@error` alone."""

    # Each marker on a line of its own after an empty one, as `marker_line` prints it:
    # `split_sections` takes that empty line off, and only that one (a value may be empty).
    def section(name: str) -> list[str]:
        return [cli_command("ECHO", [""]), cli_command("ECHO", [marker + name])]

    commands = []
    for name in names:
        commands += [*section(name), cli_command("CONFIG GET", [name])]
    commands += [*section("@version"), "INFO server"]
    error = shlex.quote(marker + "@error")
    return (
        _prelude(f"echo {error}; echo '{_NO_CLI}'; exit 0")
        + _read("at", at, commands, f'echo {error}; echo "$fail"; exit 0')
        + "printf '%s\\n' \"$out\"\n"
        + "pid=$(printf '%s\\n' \"$out\" | sed -n 's/^process_id:\\([0-9]*\\).*/\\1/p')\n"
        + f"printf '\\n%s\\n' {shlex.quote(marker + '@limits')}\n"
        + 'if [ -n "$pid" ]; then grep \'^Max open files\' "/proc/$pid/limits"; fi\n'
    )


def state_script(at: Sequence[Endpoint], running: Mapping[str, str], names: Sequence[str]) -> str:
    """Print `name value` per name as the running Redis has it, for a saved plan's
    precondition (`state_text` is what it printed when planned). A secret is compared
    here, on the host, and only `as planned` or `changed` is printed: its value never
    leaves the host, not even as a digest. Prints `unreachable` when Redis does not answer.
    """
    gets = [cli_command("CONFIG GET", [name]) for name in names]
    prints = []
    for n, name in enumerate(names, start=1):
        if name in redisconf.SECRET_DIRECTIVES:
            planned = shlex.quote(running.get(name, ""))
            prints.append(
                f'if [ "$(got {2 * n})" = {planned} ]; then echo {name} as planned; '
                f"else echo {name} changed; fi\n"
            )
        else:
            prints.append(f"printf '%s %s\\n' {name} \"$(got {2 * n})\"\n")
    return (
        "# the running values this change was planned against\n"
        + _prelude()
        + _read("at", at, gets, "echo unreachable; exit 0")
        + "gets=$out\n"
        + "".join(prints)
    )


def state_text(running: Mapping[str, str], names: Sequence[str]) -> str:
    """What `state_script` prints for these running values."""
    return "".join(
        f"{name} as planned\n"
        if name in redisconf.SECRET_DIRECTIVES
        else f"{name} {running.get(name, '')}\n"
        for name in names
    )
