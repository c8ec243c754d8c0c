"""`redis_config`: set or remove redis.conf directives where Redis will read them.

Diagnose reads the configuration the way Redis loads it — the main file, then every file
its `include` lines match, where they stand — in one round trip per include level (one in
total on a stock Debian host, discovery of the file included). Plan edits the occurrence
that is in force, so a value overridden by an included file is changed in that file, and
leaves comments and layout alone; a second run plans nothing.

Live first, saved too (`live`, on by default): where the running Redis takes a value with
CONFIG SET (`redis.live.restart_reason`: by directive and version), the plan is the file
edit AND a command that sets the value on the running server and then checks, with CONFIG
GET, that it runs exactly as the file now says (`redis.configset`); both changes are
"live, no restart", so the step's `notify:` handlers (a restart) do not run and every
connected client stays. Where it cannot (Redis 6.0 and `bind`/`port`, Redis not running or
not answering, TLS only, no redis-cli, a `remove`, or `live: false`), the file edit alone
is planned, marked "needs a restart: WHY", and the handlers restart Redis.

Why not CONFIG REWRITE for the saved layer: it writes the whole file from the running
configuration, so it would also persist every unrelated runtime change someone made with
CONFIG SET (drift nobody reviewed), it rewrites only the main file (an `include`d file that
holds the value in force stays, and still wins at the next start), and it bypasses what a
FileChange gives: the reviewed diff, the atomic write with a backup, the drift check
against the bytes planned on, and the restore on rollback.

`load_config` is public so other steps (a triage or facts step) can read the effective
configuration without editing anything; the parsing rules live in `redmedic.redis.redisconf`.

Why the discovery order: the unit's main process and a running redis-server (root's,
redis's or in the unit's cgroup only: anyone can name a process redis-server) are asked
first because they show the file actually in use, but Redis rewrites its command line
(`set-proc-title yes`, Debian's default, leaves only "redis-server 127.0.0.1:6379"), so
the unit's ExecStart is the usual source on systemd hosts; /etc/redis/redis.conf is last.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import Field, model_validator

from redmedic.connection.base import RemoteFile
from redmedic.connection.scripts import new_marker, parse_stat_line, split_sections
from redmedic.errors import StepError
from redmedic.model.plan import (
    LIVE,
    Change,
    CommandChange,
    FileChange,
    Finding,
    StepResult,
    restart_needed,
)
from redmedic.redis import configset, live, redisconf
from redmedic.redis.configset import Endpoint
from redmedic.redis.facts import TRUSTED_FN, parse_untrusted, untrusted_findings
from redmedic.redis.redisconf import ConfError, Config
from redmedic.steps.base import PlanError, StepArgs, StepContext, StepType

DEFAULT_PATH = "/etc/redis/redis.conf"
_MARK = "redmedic:"
_ENCODING = ("utf-8", "surrogateescape")
_MAX_ROUNDS = 16  # include levels followed before giving up (Redis has no limit; loops hang it)

# One file in the bundle: a header line (tag, size, mode, owner, group, path), then the bytes.
_EMIT_FN = (
    "emit() {\n"
    "  if s=$(stat -L -c '%s %a %U %G' -- \"$2\" 2>&1); then\n"
    f'    printf \'{_MARK}file %s %s %s\\n\' "$1" "$s" "$2"\n'
    '    cat -- "$2" || exit 1\n'
    "  else\n"
    "    case $s in\n"
    "      *'No such file'*|*'Not a directory'*)\n"
    f'        printf \'{_MARK}absent %s %s\\n\' "$1" "$2" ;;\n'
    "      *) printf '%s\\n' \"$s\" >&2; exit 1 ;;\n"
    "    esac\n"
    "  fi\n"
    "}\n"
)

# Which redis.conf does this host's Redis use? Prints `redmedic:found HOW` and the file.
_DISCOVER = r"""
conf_of() {
  c=$(tr '\0' '\n' 2>/dev/null < "/proc/$1/cmdline" | sed -n '2,$p' | grep -m1 '\.conf$') \
    || return 1
  case $c in
    /*) ;;
    *) d=$(readlink "/proc/$1/cwd" 2>/dev/null) || return 1; c=$d/$c ;;
  esac
  printf '%s\n' "$c"
}
conf= how=
pid=$(systemctl show -p MainPID --value "$unit" 2>/dev/null) || pid=
if [ -n "$pid" ] && [ "$pid" != 0 ] && conf=$(conf_of "$pid"); then how="process $pid of $unit"; fi
if [ -z "$how" ]; then
  for d in /proc/[0-9]*; do
    read -r comm 2>/dev/null < "$d/comm" || continue
    [ "$comm" = redis-server ] || continue
    if ! trusted "${d#/proc/}"; then
      printf 'redmedic:ignored %s %s\n' "${d#/proc/}" "$(stat -c %U "$d" 2>/dev/null || echo '?')"
      continue
    fi
    if conf=$(conf_of "${d#/proc/}"); then how="process ${d#/proc/}"; break; fi
  done
fi
if [ -z "$how" ]; then
  conf=$(systemctl show -p ExecStart --value "$unit" 2>/dev/null | tr ' ;' '\n\n' \
    | grep -m1 '\.conf$') && how="ExecStart of $unit"
fi
[ -n "$how" ] || { conf=@DEFAULT@; how=default; }
printf 'redmedic:found %s\n' "$how"
emit main "$conf"
"""


class RedisConfigArgs(StepArgs):
    path: str | None = Field(
        default=None,
        description=(
            "redis.conf to read and edit. Omitted: the file of the unit's running process, "
            "else of a running redis-server of root or redis (others are ignored, with a "
            "finding), else the unit's ExecStart, else /etc/redis/redis.conf."
        ),
    )
    unit: str = Field(
        default="redis-server", description="systemd unit used to discover the config file."
    )
    set: dict[str, str | int | float | bool | list[str | int | float]] = Field(
        default={},  # pydantic copies defaults: no shared mutable state
        description=(
            "Directive -> wanted value: a string, number, yes/no boolean, or a list of "
            "arguments (bind: [127.0.0.1, 10.0.0.5]). Quoted in the file when needed."
        ),
    )
    remove: list[str] = Field(
        default=[],
        description="Directives to delete everywhere they occur (main file and includes).",
    )
    live: bool = Field(
        default=True,
        description=(
            "Apply `set` to the running Redis too where its version takes the directive "
            "live (CONFIG SET, then CONFIG GET must equal the file): no restart, clients stay "
            "connected. The running values are read (redis-cli on the host) and reported "
            "where they differ from the file. false: edit the file only; the change then "
            "needs a restart (the step's notify handlers run)."
        ),
    )

    @model_validator(mode="after")
    def _names_are_directives(self) -> RedisConfigArgs:
        """Catch impossible requests when the playbook loads, before any host is touched."""
        try:
            redisconf.edit(Config("-", {"-": redisconf.parse("", "-")}), self.set, self.remove)
        except ConfError as exc:
            raise ValueError(str(exc)) from None
        return self


@dataclass(frozen=True)
class LoadedConfig:
    """A host's configuration as read: parsed files, the raw files (for FileChange.before)
    and how the main file was found."""

    config: Config
    remote: Mapping[str, RemoteFile]
    discovered_by: str
    ignored: tuple[dict[str, Any], ...] = ()  # redis-server processes not trusted
    # The files as they are on the host, without earlier steps' planned edits: what the
    # running Redis was started with, so where it answers now.
    on_host: Config | None = None


@dataclass(frozen=True)
class ConfigFound:
    """diagnose's value: the configuration as read (plan edits these very files, no second
    read), what the step reports, and whether writing needs sudo."""

    loaded: LoadedConfig = field(repr=False, compare=False)  # holds secrets
    msg: str
    facts: Mapping[str, Any]
    findings: tuple[Finding, ...]
    become: bool
    running: LiveRead | None = field(default=None, repr=False, compare=False)  # secrets too


@dataclass(frozen=True)
class BundleItem:
    """One file of a bundle read: the request it answers (`tag`), its path, None if absent."""

    tag: str
    path: str
    file: RemoteFile | None


@dataclass(frozen=True)
class Bundle:
    found: str | None = None
    items: tuple[BundleItem, ...] = ()
    ignored: tuple[dict[str, Any], ...] = ()  # untrusted redis-server processes: {pid, user}


def discovery_script(unit: str) -> str:
    """One script: find the config file (see the module docstring), then emit it."""
    discover = _DISCOVER.replace("@DEFAULT@", shlex.quote(DEFAULT_PATH))
    return f"LC_ALL=C; export LC_ALL\nunit={shlex.quote(unit)}\n{_EMIT_FN}{TRUSTED_FN}{discover}"


def read_script(requests: Sequence[tuple[str, str]]) -> str:
    """One script emitting each (tag, path-or-glob); globs list every existing match."""
    lines = ["LC_ALL=C; export LC_ALL", _EMIT_FN.rstrip("\n")]
    for tag, pattern in requests:
        if redisconf.has_wildcard(pattern):
            lines.append(
                f"for f in {_glob_word(pattern)}; do "
                f'if [ -e "$f" ] || [ -L "$f" ]; then emit {tag} "$f"; fi; done'
            )
        else:
            lines.append(f"emit {tag} {shlex.quote(pattern)}")
    return "\n".join(lines) + "\n"


def _glob_word(pattern: str) -> str:
    """`pattern` as an unquoted sh word: wildcards stay active, everything else literal."""
    return "".join(c if c.isalnum() or c in "*?[]/._-" else "\\" + c for c in pattern)


def parse_bundle(data: bytes) -> Bundle:
    """Parse the output of `discovery_script`/`read_script` (raises ValueError if garbled)."""
    found: str | None = None
    items: list[BundleItem] = []
    ignored: list[dict[str, Any]] = []
    pos = 0
    while pos < len(data):
        end = data.find(b"\n", pos)
        if end < 0:
            raise ValueError(f"unterminated line {data[pos : pos + 80]!r}")
        header = data[pos:end].decode(*_ENCODING)
        pos = end + 1
        if header.startswith(f"{_MARK}found "):
            found = header.split(" ", 1)[1]
        elif header.startswith(f"{_MARK}ignored "):
            ignored += parse_untrusted(header.split(" ", 1)[1])
        elif header.startswith(f"{_MARK}absent "):
            _, tag, path = header.split(" ", 2)
            items.append(BundleItem(tag, path, None))
        elif header.startswith(f"{_MARK}file "):
            _, tag, size, stat_rest = header.split(" ", 3)
            mode_text, owner, group, path = stat_rest.split(" ", 3)
            mode, owner, group = parse_stat_line(f"{mode_text} {owner} {group}")
            content = data[pos : pos + int(size)]
            if len(content) != int(size):
                raise ValueError(f"{path} changed while it was read")
            pos += int(size)
            items.append(BundleItem(tag, path, RemoteFile(path, content, mode, owner, group)))
        else:
            raise ValueError(f"unexpected line {header[:80]!r} (did a file change while read?)")
    return Bundle(found, tuple(items), tuple(ignored))


def load_config(ctx: StepContext, path: str | None, unit: str = "redis-server") -> LoadedConfig:
    """Read the main config file and all it includes, as later planned edits will leave them.

    One round trip for the main file (with discovery when `path` is None) and one per level
    of includes. Raises StepError when the main file is missing or unreadable.
    """
    script = read_script([("main", path)]) if path else discovery_script(unit)
    bundle = _fetch(ctx, script)
    how = bundle.found or "path argument"
    main = next((item for item in bundle.items if item.tag == "main"), None)
    if main is None:
        raise StepError(ctx.host.name, "no config file in the host's answer", step=ctx.step_name)
    remote: dict[str, RemoteFile] = {}
    on_host: dict[str, RemoteFile] = {main.path: main.file} if main.file else {}
    main_file = ctx.planned_files.get(main.path, main.file)
    if main_file is None:
        raise StepError(
            ctx.host.name,
            f"{main.path} does not exist (found by: {how}) — set `path:` to the redis.conf in use",
            step=ctx.step_name,
        )
    remote[main.path] = main_file
    files = {main.path: _parse(main_file)}
    matches: dict[str, tuple[str, ...]] = {}
    pending = _unresolved(files, matches)
    for _ in range(_MAX_ROUNDS):
        if not pending:
            break
        requests = [(f"i{n}", pattern) for n, pattern in enumerate(pending)]
        items = _fetch(ctx, read_script(requests)).items
        on_host.update((i.path, i.file) for i in items if i.file is not None)
        for n, pattern in enumerate(pending):
            found = [i for i in items if i.tag == f"i{n}"]
            matched = _overlay(ctx, pattern, found)
            matches[pattern] = tuple(sorted(matched))
            for file_path, remote_file in matched.items():
                remote[file_path] = remote_file
                files[file_path] = _parse(remote_file)
        pending = _unresolved(files, matches)
    host_files = {path: _parse(f) for path, f in on_host.items()}
    return LoadedConfig(
        Config(main.path, files, matches),
        remote,
        how,
        bundle.ignored,
        Config(main.path, host_files, matches),
    )


def _fetch(ctx: StepContext, script: str) -> Bundle:
    result = ctx.conn.run(script, become=ctx.become)
    if not result.ok:
        hint = "" if ctx.become else " — try `become: true`"
        raise StepError(
            ctx.host.name,
            f"cannot read the Redis configuration: {result.tail(2) or f'exit {result.rc}'}{hint}",
            step=ctx.step_name,
        )
    try:
        return parse_bundle(result.stdout.encode(*_ENCODING))
    except ValueError as exc:
        raise StepError(
            ctx.host.name, f"cannot read the Redis configuration: {exc}", step=ctx.step_name
        ) from None


def _overlay(ctx: StepContext, pattern: str, found: list[BundleItem]) -> dict[str, RemoteFile]:
    """The files a pattern matches, with earlier planned edits (and planned new files)."""
    matched = {i.path: i.file for i in found if i.file is not None}
    if redisconf.has_wildcard(pattern):
        for planned in redisconf.glob_matches(pattern, list(ctx.planned_files)):
            matched[planned] = ctx.planned_files[planned]
    elif pattern in ctx.planned_files:
        matched[pattern] = ctx.planned_files[pattern]
    return {p: f for p, f in matched.items() if f is not None}


def _parse(remote: RemoteFile) -> redisconf.ConfFile:
    return redisconf.parse(remote.content.decode(*_ENCODING), remote.path)


def _unresolved(files: Mapping[str, redisconf.ConfFile], matches: Mapping[str, Any]) -> list[str]:
    wanted: list[str] = []
    for conf in files.values():
        for pattern in redisconf.includes_of(conf):
            if pattern not in matches and pattern not in wanted:
                wanted.append(pattern)
    return wanted


# -- the running values (live: true) -------------------------------------------------------

_CAUSES = {
    "bind": "bind",
    "port": "wrong-port",
    "protected-mode": "protected-mode",
    "maxclients": "max-clients",
    "maxmemory": "oom",
    "maxmemory-policy": "oom",
}


@dataclass(frozen=True)
class LiveRead:
    """What the running Redis said when planned: the raw values of the `set` directives
    (secrets too: never shown), its version, or why it could not be asked; `at` is where
    it was looked for (the host's files first, then as earlier steps leave them)."""

    values: Mapping[str, str]
    version: live.Version | None
    error: str | None
    at: tuple[Endpoint, ...]
    open_files: int | None = None  # the process's hard limit (None: unlimited or unknown)


def parse_live(sections: Mapping[str, str]) -> tuple[dict[str, str], str | None]:
    """(name -> running value, first error text) from `configset.read_script`'s sections."""
    if "@error" in sections:
        return {}, " ".join(sections["@error"].split()) or "no answer from redis-cli"
    values: dict[str, str] = {}
    error: str | None = None
    for name, rest in sections.items():
        if name.startswith("@"):
            continue
        lines = rest.split("\n") if rest.strip() else []
        if len(lines) >= 2 and lines[0] == name:
            values[name] = lines[1]
        elif lines and error is None:
            error = " ".join(line.strip() for line in lines if line.strip())
    return values, error


def open_files_limit(sections: Mapping[str, str]) -> int | None:
    """The hard `Max open files` of /proc/PID/limits (`@limits`); None if unlimited/unknown."""
    words = sections.get("@limits", "").split()
    hard = words[4] if len(words) > 4 and words[:3] == ["Max", "open", "files"] else ""
    return int(hard) if hard.isdigit() else None


def running_version(sections: Mapping[str, str]) -> live.Version | None:
    """`redis_version` from the INFO server section of `configset.read_script`."""
    for line in sections.get("@version", "").splitlines():
        if line.startswith("redis_version:"):
            return live.parse_version(line.split(":", 1)[1].strip())
    return None


def live_findings(
    running: Mapping[str, str], config: Mapping[str, redisconf.Effective]
) -> list[Finding]:
    """A finding per directive whose running value differs from the file's value.

    Keyed directives (`client-output-buffer-limit`, ...) are not compared: CONFIG GET
    merges all their keys into one normalised line.
    """
    findings = []
    for name, value in running.items():
        in_file = config.get(name)
        if in_file is None or name in redisconf.KEYED:
            continue
        if redisconf.same_args(name, [value], [in_file.value]):
            continue
        shown_live = " ".join(redisconf.masked_args(name, [value]))
        shown_file = " ".join(redisconf.masked_args(name, in_file.args))
        findings.append(
            Finding(
                _CAUSES.get(name, "config-drift"),
                f"running {name} is {shown_live!r} but the file says {shown_file!r}: "
                "a restart would undo the live value",
                (f"CONFIG GET {name}: {shown_live}", f"{in_file.sources[-1].where}: {shown_file}"),
            )
        )
    return findings


# -- the step ------------------------------------------------------------------------------


@dataclass
class _Secrets:
    """Collects every secret a configuration or a wanted value carries."""

    values: list[str] = field(default_factory=list)

    def add(self, name: str, args: Sequence[str]) -> None:
        for secret in redisconf.secrets_in(name, args):
            self.values += [secret, redisconf.format_arg(secret)]


class RedisConfig(StepType[RedisConfigArgs, ConfigFound]):
    """Set or remove redis.conf directives in the file where each one is in force."""

    name = "redis_config"
    Args = RedisConfigArgs
    summary = "Set or remove redis.conf directives (includes followed), keeping comments."
    read_only = False

    def diagnose(self, args: RedisConfigArgs, ctx: StepContext) -> ConfigFound:
        loaded = load_config(ctx, args.path, args.unit)
        config = loaded.config
        in_force = config.effective()
        secrets = _Secrets()
        for d in config.sequence():
            secrets.add(d.name, d.args)
        for name, value in args.set.items():
            secrets.add(name.lower(), redisconf.to_args(name.lower(), value))
        for secret in secrets.values:
            ctx.masker.add(secret)
        facts: dict[str, Any] = {
            "path": config.main,
            "files": config.load_order(),
            "discovered_by": loaded.discovered_by,
            "config": redisconf.facts_view(in_force),
            "where": {name: eff.sources[-1].where for name, eff in in_force.items()},
            "has_password": redisconf.has_password(in_force),
            "notes": config.notes(),
        }
        findings = untrusted_findings(loaded.ignored)
        running = None
        if args.live and args.set:
            running = self._live(args, ctx, loaded)
            facts["live"] = {
                n: " ".join(redisconf.masked_args(n, [v])) for n, v in running.values.items()
            }
            facts["live_error"] = running.error
            facts["redis_version"] = (
                live.shown_version(running.version) if running.version else None
            )
            findings += live_findings(running.values, in_force)
        msg = f"{config.main} ({loaded.discovered_by}): {len(in_force)} directives in force"
        return ConfigFound(loaded, msg, facts, tuple(findings), ctx.become, running)

    def registered(self, found: ConfigFound) -> StepResult:
        return StepResult(msg=found.msg, facts=found.facts, findings=found.findings)

    def plan(self, args: RedisConfigArgs, found: ConfigFound) -> list[Change]:
        loaded = found.loaded
        try:
            texts = redisconf.edit(loaded.config, args.set, args.remove)
        except ConfError as exc:
            raise PlanError(str(exc)) from None
        return plan_changes(args, loaded, texts, found.running, found.become)

    @staticmethod
    def _live(args: RedisConfigArgs, ctx: StepContext, loaded: LoadedConfig) -> LiveRead:
        """One round trip: the running values of the `set` directives and the version."""
        on_host = loaded.on_host.effective() if loaded.on_host else {}
        at = configset.endpoints(Endpoint.of(on_host), Endpoint.of(loaded.config.effective()))
        if not at:
            return LiveRead({}, None, "the server listens on TLS only: not asked", ())
        names = [n.lower() for n in args.set]
        marker = new_marker()
        result = ctx.conn.run(configset.read_script(at, names, marker), become=ctx.become)
        sections = split_sections(result.stdout, marker)
        values, error = parse_live(sections)
        for name, value in values.items():
            for secret in redisconf.secrets_in(name, [value]):
                ctx.masker.add(secret)
        if error is None and len(values) < len(names):
            error = result.tail(2) or "no answer from redis-cli"
        version, limit = running_version(sections), open_files_limit(sections)
        return LiveRead(values, version, error, tuple(at), limit)


def _after(config: Config, texts: Mapping[str, str]) -> Config:
    """The configuration once the edits are written."""
    files = {
        path: redisconf.parse(texts[path], path) if path in texts else conf
        for path, conf in config.files.items()
    }
    return Config(config.main, files, config.matches)


def plan_changes(
    args: RedisConfigArgs,
    loaded: LoadedConfig,
    texts: Mapping[str, str],
    running: LiveRead | None,
    become: bool,
) -> list[Change]:
    """The file edits, and the CONFIG SET that makes them live where the server takes them
    (pure: what the host said in, changes out). See the module docstring."""
    config = loaded.config
    before, after = config.effective(), _after(config, texts).effective()
    names = [n.lower() for n in args.set]
    wanted = {n: live.running_form(n, after[n].args) for n in names if n in after}
    values = running.values if running else {}
    to_set = [n for n in names if n in wanted and values.get(n) != wanted[n]]
    edited = [
        n
        for n in names
        if n not in before or not redisconf.same_args(n, before[n].args, after[n].args)
    ]
    changing = [*edited, *(n for n in to_set if n not in edited)]
    why = _restart_reasons(args, before, running, changing, wanted)
    if "bind" in names and "bind" in after and running is not None:
        refusal = live.bind_refusal(list(after["bind"].args), running.version)
        if refusal:
            raise PlanError(refusal)

    def file_change(path: str, effect: str) -> FileChange:
        after_bytes = texts[path].encode(*_ENCODING)
        return FileChange(path, loaded.remote[path], after_bytes, become, effect=effect)

    paths = [path for path in config.load_order() if path in texts]
    if why:
        return [file_change(path, restart_needed(why)) for path in paths]
    changes: list[Change] = [file_change(path, LIVE) for path in paths]
    if to_set and running is not None:
        changes.append(_config_set(loaded, after, running, to_set, wanted, become))
    return changes


def _restart_reasons(
    args: RedisConfigArgs,
    before: Mapping[str, redisconf.Effective],
    running: LiveRead | None,
    changing: Sequence[str],
    wanted: Mapping[str, str],
) -> str:
    """Why this step's edits cannot be made live ("" when they can)."""
    if not args.live:
        return "`live: false`, redis.conf only"
    reasons = []
    if any(name.lower() in before for name in args.remove):
        reasons.append("a removed directive's default comes back only when Redis starts")
    if changing and (running is None or running.error):
        error = running.error if running else "not asked"
        return "; ".join([*reasons, f"Redis could not be asked ({error})"])
    for name in changing:
        reason = live.restart_reason(name, running.version if running else None)
        if reason:
            reasons.append(reason)
    if "maxclients" in changing and running is not None:
        reason = live.maxclients_reason(wanted.get("maxclients", ""), running.open_files)
        if reason:
            reasons.append(reason)
    return "; ".join(reasons)


def _config_set(
    loaded: LoadedConfig,
    after: Mapping[str, redisconf.Effective],
    running: LiveRead,
    names: Sequence[str],
    wanted: Mapping[str, str],
    become: bool,
) -> CommandChange:
    """CONFIG SET `names` (requirepass last: the session stays authenticated), the undo
    setting the running values back, and those values as the saved plan's precondition."""
    order = sorted(names, key=lambda n: n == "requirepass")
    new = [(n, wanted[n]) for n in order]
    old = [(n, running.values.get(n, "")) for n in order]
    at = configset.endpoints(Endpoint.of(loaded.config.effective()), *running.at)
    back_at = configset.every_pairing(Endpoint.of(after), *at)
    shown = ", ".join(f"{n} {' '.join(redisconf.masked_args(n, [v]))}" for n, v in new)
    was = ", ".join(f"{n} {' '.join(redisconf.masked_args(n, [v]))}" for n, v in old)
    return CommandChange(
        configset.set_script(
            f"CONFIG SET {shown} on the running Redis; CONFIG GET must equal redis.conf",
            at,
            new,
            back=old,
            back_at=back_at,
        ),
        become=become,
        undo_command=configset.set_script(
            f"CONFIG SET back to {was}", back_at, list(reversed(old))
        ),
        precondition=(
            configset.state_script(running.at, running.values, order),
            configset.state_text(running.values, order),
        ),
        effect=LIVE,
    )
