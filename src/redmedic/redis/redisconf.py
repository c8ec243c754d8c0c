"""redis.conf as Redis itself reads it, and edits that keep the file's comments and layout.

Pure functions only (text in, values or text out), so every rule here is tested against a
copy of Debian's real /etc/redis/redis.conf. Reading the files from a host is the job of
`redmedic.steps.redis_config`; anything that wants the effective configuration (a triage
or facts step) loads the files there and asks this module.

What Redis does, and this module copies (redis 7.0 `config.c`, `sds.c`):

* The file is split on "\\n" only; each line is trimmed of spaces, tabs, CR and LF. Empty
  lines and lines whose first character is `#` are skipped. There are no trailing
  comments: `bind 10.0.0.1 # lan` passes `#` and `lan` as addresses.
* Arguments are split like `sdssplitargs`: "double quotes" know \\n \\r \\t \\b \\a \\xHH
  and backslash-anything, 'single quotes' only know \\'; a closing quote must be followed
  by a space or the end of the line, and an unbalanced line stops Redis from starting.
* The directive name is case-insensitive. `include PATH` loads another file (globs
  allowed, matches in alphabetical order, a glob matching nothing is ignored) at that
  point, so directives after the include line override the included file.
* For most directives the last occurrence wins. `save` lines add up (the first `save` in a
  file drops the built-in defaults, `save ""` clears everything before it); `rename-command`,
  `user`, `loadmodule` and `client-output-buffer-limit` keep one value per first argument.
* A single argument given to a multi-argument directive (`bind "a b"`) is split on spaces,
  so `bind "a b"` and `bind a b` mean the same thing.
"""

from __future__ import annotations

import os.path
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from functools import lru_cache

from redmedic.safety.secrets import MASK

# Directives whose value is a password: masked in facts, never shown.
SECRET_DIRECTIVES = frozenset(
    {"requirepass", "masterauth", "tls-key-file-pass", "tls-client-key-file-pass"}
)
# All lines together make up one value.
ACCUMULATING = frozenset({"save"})
# One value per first argument (a class, a command, a user, a module path).
KEYED = frozenset({"client-output-buffer-limit", "rename-command", "user", "loadmodule"})
# A string value given to `set` is split into words for these (Redis splits them too).
MULTI_ARG = frozenset({"bind", "save", "oom-score-adj-values", "replicaof", "slaveof", *KEYED})
# `set` cannot express these: an include is structure, not a value.
NOT_SETTABLE = frozenset({"include"})

_SPACE = " \t\n\r\v\f"  # C isspace() in the C locale: what sdssplitargs splits on
_SPACES = re.compile(f"[{_SPACE}]+")
_TRIM = " \t\r\n"  # what Redis trims from each line
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "b": "\b", "a": "\a"}
_UNESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b"}
_UNESCAPES["\a"] = "\\a"
_BARE = re.compile(r"""^[^\s"'\\]+$""")
_MEMORY = re.compile(r"^(\d+)(k|kb|m|mb|g|gb)?$", re.IGNORECASE)
_MEMORY_UNITS = {
    "": 1,
    "k": 1000,
    "kb": 1024,
    "m": 1000**2,
    "mb": 1024**2,
    "g": 1000**3,
    "gb": 1024**3,
}
# `user NAME ... >password` adds a password, `<password` removes one: both are plaintext.
_USER_PASSWORD = re.compile(r"^[<>]")
_MAX_INCLUDE_DEPTH = 16

Value = str | int | float | bool | Sequence[str | int | float]


class ConfError(ValueError):
    """A requested edit cannot be expressed (e.g. `set: {include: ...}`)."""


@dataclass(frozen=True)
class Directive:
    """One configuration line as Redis reads it: lower-cased name, unquoted arguments."""

    name: str
    args: tuple[str, ...]
    path: str
    line: int  # 1-based

    @property
    def value(self) -> str:
        """The arguments joined by spaces: the form `CONFIG GET` prints."""
        return " ".join(self.args)

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


@dataclass(frozen=True)
class LineError:
    """A line Redis would refuse to start with (unbalanced quotes)."""

    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


@dataclass(frozen=True)
class ConfFile:
    """One parsed file: its text (kept for editing) and the directives found in it."""

    path: str
    text: str
    directives: tuple[Directive, ...]
    errors: tuple[LineError, ...] = ()


# -- parsing -------------------------------------------------------------------------------


def split_args(line: str) -> list[str]:
    """Split one line into arguments exactly like Redis's `sdssplitargs`.

    Raises ValueError for unbalanced quotes (Redis refuses to start on such a line).
    Works on the UTF-8 bytes so `\\xHH` escapes that form a multi-byte character decode
    to that character (undecodable bytes survive as surrogates).
    """
    if '"' not in line and "'" not in line:  # most lines: no quoting, so no escapes either
        return [arg for arg in _SPACES.split(line) if arg]
    raw = line.encode("utf-8", "surrogateescape")
    args: list[str] = []
    i, n = 0, len(raw)
    while True:
        while i < n and chr(raw[i]) in _SPACE:
            i += 1
        if i >= n:
            return args
        current = bytearray()
        in_double = in_single = False
        while True:
            c = chr(raw[i]) if i < n else ""
            if in_double:
                if c == "\\" and raw[i + 1 : i + 2] == b"x" and _is_hex(raw, i):
                    current.append(int(raw[i + 2 : i + 4], 16))
                    i += 3
                elif c == "\\" and i + 1 < n:
                    i += 1
                    escaped = chr(raw[i])
                    current += _ESCAPES.get(escaped, escaped).encode("latin-1")
                elif c == '"':
                    if i + 1 < n and chr(raw[i + 1]) not in _SPACE:
                        raise ValueError("closing quote must be followed by a space")
                    i += 1
                    break
                elif not c:
                    raise ValueError("unbalanced quotes")
                else:
                    current.append(raw[i])
            elif in_single:
                if c == "\\" and i + 1 < n and raw[i + 1 : i + 2] == b"'":
                    i += 1
                    current += b"'"
                elif c == "'":
                    if i + 1 < n and chr(raw[i + 1]) not in _SPACE:
                        raise ValueError("closing quote must be followed by a space")
                    i += 1
                    break
                elif not c:
                    raise ValueError("unbalanced quotes")
                else:
                    current.append(raw[i])
            elif not c or c in _SPACE:
                break
            elif c == '"':
                in_double = True
            elif c == "'":
                in_single = True
            else:
                current.append(raw[i])
            i += 1
        args.append(bytes(current).decode("utf-8", "surrogateescape"))


def _is_hex(raw: bytes, i: int) -> bool:
    digits = raw[i + 2 : i + 4]
    return len(digits) == 2 and all(chr(b) in "0123456789abcdefABCDEF" for b in digits)


@lru_cache(maxsize=128)
def parse(text: str, path: str = "redis.conf") -> ConfFile:
    """Parse a redis.conf text: every directive with its line number, and bad lines.

    Kept for the same text: a host's config is parsed by the facts, by every redis.conf
    step and by each look-ahead pass of them (`run.batching.look_ahead`), some twenty times
    a host, and Debian's 2,000-line file costs milliseconds each time. A ConfFile is frozen,
    so one parse can serve them all; 128 texts cover the hosts in flight (a few each).
    """
    directives: list[Directive] = []
    errors: list[LineError] = []
    for number, line in enumerate(text.split("\n"), start=1):
        body = line.strip(_TRIM)
        if not body or body.startswith("#"):
            continue
        try:
            args = split_args(body)
        except ValueError as exc:
            errors.append(LineError(path, number, f"{exc} (Redis will not start)"))
            continue
        if args:
            directives.append(Directive(args[0].lower(), tuple(args[1:]), path, number))
    return ConfFile(path, text, tuple(directives), tuple(errors))


# -- includes and the effective configuration ----------------------------------------------


def include_pattern(arg: str, including_path: str) -> str:
    """The absolute path (or glob) an `include` argument names.

    Redis opens a relative path against its working directory at start-up, which the
    config cannot tell us; the including file's directory is what people mean, so that is
    what is used (`Config.notes` says so whenever it happens).
    """
    if os.path.isabs(arg):
        return os.path.normpath(arg)
    return os.path.normpath(os.path.join(os.path.dirname(including_path), arg))


def has_wildcard(pattern: str) -> bool:
    return any(c in pattern for c in "*?[")


def includes_of(conf: ConfFile) -> list[str]:
    """The include patterns a file names, resolved, in file order."""
    return [include_pattern(d.args[0], conf.path) for d in conf.directives if _is_include(d)]


def _is_include(d: Directive) -> bool:
    return d.name == "include" and len(d.args) == 1


@dataclass(frozen=True)
class Config:
    """The main file plus every file its includes matched: what Redis loads at start-up.

    `matches` maps each resolved include pattern to the files it matched (sorted, as
    Redis's glob returns them); a pattern without a wildcard whose file is missing maps to
    an empty tuple and is listed in `missing`.
    """

    main: str
    files: Mapping[str, ConfFile]
    matches: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def sequence(self) -> list[Directive]:
        """Every directive in load order, includes expanded where they stand."""
        return list(self._walk(self.main, ()))

    def _walk(self, path: str, stack: tuple[str, ...]) -> Iterator[Directive]:
        conf = self.files.get(path)
        if conf is None or path in stack or len(stack) > _MAX_INCLUDE_DEPTH:
            return
        for d in conf.directives:
            if _is_include(d):
                for included in self.matches.get(include_pattern(d.args[0], path), ()):
                    yield from self._walk(included, (*stack, path))
            else:
                yield d

    def load_order(self) -> list[str]:
        """The files in the order Redis reads them (each once)."""
        order: list[str] = []
        self._order(self.main, (), order)
        return order

    def _order(self, path: str, stack: tuple[str, ...], order: list[str]) -> None:
        if path not in self.files or path in stack or len(stack) > _MAX_INCLUDE_DEPTH:
            return
        if path not in order:
            order.append(path)
        for pattern in includes_of(self.files[path]):
            for included in self.matches.get(pattern, ()):
                self._order(included, (*stack, path), order)

    @property
    def missing(self) -> list[str]:
        """Included files (without wildcards) that do not exist: Redis will not start."""
        return [p for p, found in self.matches.items() if not found and not has_wildcard(p)]

    @property
    def errors(self) -> list[LineError]:
        return [e for path in self.load_order() for e in self.files[path].errors]

    def notes(self) -> list[str]:
        """Things a reader should know about how this configuration was read."""
        notes = [f"included file {p} does not exist: Redis will not start" for p in self.missing]
        for path in self.load_order():
            for d in self.files[path].directives:
                if _is_include(d) and not os.path.isabs(d.args[0]):
                    notes.append(
                        f"{d.where}: relative include {d.args[0]!r} read from "
                        f"{os.path.dirname(path)}; Redis resolves it against its working "
                        "directory"
                    )
        notes += [str(e) for e in self.errors]
        return notes

    def effective(self) -> dict[str, Effective]:
        """The value each directive ends up with, and the lines it comes from."""
        return effective(self.sequence())


@dataclass(frozen=True)
class Effective:
    """A directive's effective value: `value` for plain ones, `values` for keyed ones."""

    name: str
    sources: tuple[Directive, ...]

    @property
    def args(self) -> tuple[str, ...]:
        """The arguments Redis ends up with (for `save`, all lines after the last reset)."""
        if self.name in ACCUMULATING:
            return tuple(arg for d in self.sources for arg in d.args if arg != "")
        return self.sources[-1].args

    @property
    def value(self) -> str:
        return " ".join(self.args)

    @property
    def values(self) -> list[str]:
        """Keyed directives: one `value` per key, in the order the keys first appear."""
        return [d.value for d in self.sources]


def effective(sequence: Sequence[Directive]) -> dict[str, Effective]:
    """Fold directives in load order into each one's effective value."""
    sources: dict[str, list[Directive]] = {}
    for d in sequence:
        if d.name == "include":
            continue
        found = sources.setdefault(d.name, [])
        if d.name in ACCUMULATING:
            if d.args in ((), ("",)):
                found.clear()
            found.append(d)
        elif d.name in KEYED:
            keys = [_key(o.name, o.args) for o in found]
            key = _key(d.name, d.args)
            if key in keys:
                found[keys.index(key)] = d
            else:
                found.append(d)
        else:
            found[:] = [d]
    return {name: Effective(name, tuple(found)) for name, found in sources.items()}


def _key(name: str, args: Sequence[str]) -> str:
    first = args[0] if args else ""
    return first if name in ("user", "loadmodule") else first.lower()


def masked_args(name: str, args: Sequence[str]) -> tuple[str, ...]:
    """Arguments safe to show: secret directives' values and ACL `>password`s masked."""
    if name in SECRET_DIRECTIVES:
        return tuple(MASK if a else a for a in args)
    if name == "user":
        return tuple(a[0] + MASK if _USER_PASSWORD.match(a) else a for a in args)
    return tuple(args)


def secrets_in(name: str, args: Sequence[str]) -> list[str]:
    """The plaintext secrets a directive carries (to register with the masker)."""
    if name in SECRET_DIRECTIVES:
        return [a for a in args if a]
    if name == "user":
        return [a[1:] for a in args if _USER_PASSWORD.match(a) and len(a) > 1]
    return []


def facts_view(config: Mapping[str, Effective]) -> dict[str, str | list[str]]:
    """The effective configuration as plain values for `register:`, secrets masked.

    Plain and accumulating directives give one string (as `CONFIG GET` prints it), keyed
    ones a list with one string per key.
    """
    view: dict[str, str | list[str]] = {}
    for name, eff in sorted(config.items()):
        if name in KEYED:
            view[name] = [" ".join(masked_args(name, d.args)) for d in eff.sources]
        else:
            view[name] = " ".join(masked_args(name, eff.args))
    return view


def has_password(config: Mapping[str, Effective]) -> bool:
    """True when clients must authenticate: a non-empty `requirepass`."""
    found = config.get("requirepass")
    return found is not None and any(found.args)


# -- values and quoting --------------------------------------------------------------------


def to_args(name: str, value: Value) -> tuple[str, ...]:
    """The arguments a `set` value stands for.

    Booleans become yes/no (YAML reads `protected-mode: no` as false), numbers their
    decimal text, lists one argument per item; a string is one argument, except for
    multi-argument directives (`bind`, `save`, ...) where it is split on whitespace the way
    Redis splits it. An empty string is one empty argument (`save ""`).
    """
    if isinstance(value, bool):
        return ("yes" if value else "no",)
    if isinstance(value, int | float):
        return (str(value),)
    if isinstance(value, str):
        if name in MULTI_ARG and value.strip():
            return tuple(value.split())
        return (value,)
    return tuple(_scalar(item) for item in value)


def _scalar(item: str | int | float) -> str:
    if isinstance(item, bool):
        return "yes" if item else "no"
    return str(item)


def format_arg(arg: str) -> str:
    """Write one argument so `split_args` reads it back unchanged, quoting only if needed.

    Prefers no quotes, then "double" quotes (no escapes needed), then 'single' quotes, and
    escapes inside double quotes only as a last resort: quoted values without escapes are
    also what the secret masker recognises in diffs.
    """
    printable = arg.isprintable()
    if arg and printable and _BARE.match(arg):
        return arg
    if printable and '"' not in arg and "\\" not in arg:
        return f'"{arg}"'
    if printable and "'" not in arg and not arg.endswith("\\"):
        return f"'{arg}'"
    return '"' + "".join(_escape(c) for c in arg) + '"'


def _escape(c: str) -> str:
    if c in _UNESCAPES:
        return _UNESCAPES[c]
    if c.isprintable():
        return c
    return "".join(f"\\x{b:02x}" for b in c.encode("utf-8", "surrogateescape"))


def format_line(keyword: str, args: Sequence[str]) -> str:
    """A directive line without its newline: `keyword arg arg`."""
    return " ".join([keyword, *(format_arg(a) for a in args)])


def same_args(name: str, have: Sequence[str], want: Sequence[str]) -> bool:
    """Do two argument lists configure the same thing for Redis?

    Multi-argument directives compare word by word (`bind "a b"` is `bind a b`); yes/no
    ignore case; sizes compare in bytes (`1gb` is `1073741824`) except for secrets.
    """
    if name in MULTI_ARG:
        have = " ".join(have).split() or [""]
        want = " ".join(want).split() or [""]
    if len(have) != len(want):
        return False
    return all(_same_word(name, h, w) for h, w in zip(have, want, strict=True))


def _same_word(name: str, have: str, want: str) -> bool:
    if have == want:
        return True
    if name in SECRET_DIRECTIVES or name == "user":
        return False
    if have.lower() in ("yes", "no") and want.lower() in ("yes", "no"):
        return have.lower() == want.lower()
    return memory_bytes(have) is not None and memory_bytes(have) == memory_bytes(want)


def memory_bytes(word: str) -> int | None:
    """A Redis memory value in bytes (`1k` = 1000, `1kb` = 1024), or None."""
    match = _MEMORY.match(word)
    if match is None:
        return None
    return int(match.group(1)) * _MEMORY_UNITS[(match.group(2) or "").lower()]


# -- editing -------------------------------------------------------------------------------


@dataclass
class _Draft:
    """Pending edits of one file, by original line number, applied all at once."""

    lines: list[str]  # the file's lines, each with its own line ending
    replace: dict[int, str] = field(default_factory=dict)  # 1-based -> new line text
    delete: set[int] = field(default_factory=set)
    after: dict[int, list[str]] = field(default_factory=dict)  # insert after line N (0: top)

    @classmethod
    def of(cls, text: str) -> _Draft:
        parts = text.split("\n")  # only "\n" ends a line for Redis (not \v, \f, ...)
        lines = [part + "\n" for part in parts[:-1]]
        return cls([*lines, parts[-1]] if parts[-1] else lines)

    def newline(self) -> str:
        first = self.lines[0] if self.lines else "\n"
        return "\r\n" if first.endswith("\r\n") else "\n"

    def render(self) -> str:
        out: list[str] = []
        eol = self.newline()
        for text in self.after.get(0, []):
            out.append(text + eol)
        for number, line in enumerate(self.lines, start=1):
            if number in self.replace:
                out.append(self.replace[number] + _ending(line, eol))
            elif number not in self.delete:
                out.append(line)
            extra = self.after.get(number, [])
            if extra and not out[-1].endswith("\n"):
                out[-1] += eol
            out.extend(text + eol for text in extra)
        return "".join(out)


def _ending(line: str, default: str) -> str:
    if line.endswith("\r\n"):
        return "\r\n"
    return "\n" if line.endswith("\n") else ""


def edit(
    config: Config, set_values: Mapping[str, Value], remove: Sequence[str] = ()
) -> dict[str, str]:
    """The new text of every file that must change so the configuration has `set_values`
    in force and none of `remove`; files already right are left out (empty: nothing to do).

    `set` edits the occurrence in force in place (in whichever file holds it), else inserts
    after the main file's commented example (`# maxclients 10000`), else appends to the main
    file. `remove` deletes every occurrence in every file: the write's backup keeps the old
    text, and a commented-out copy would keep a removed password in the file.
    """
    names = [n.lower() for n in set_values]
    both = sorted(set(names) & {r.lower() for r in remove})
    if both:
        raise ConfError(f"{', '.join(both)}: both set and removed")
    drafts = {path: _Draft.of(conf.text) for path, conf in config.files.items()}
    sequence = config.sequence()
    for raw_name, value in set_values.items():
        name = raw_name.lower()
        _check_name(name)
        _plan_set(config, drafts, sequence, name, to_args(name, value))
    for raw_name in remove:
        name = raw_name.lower()
        _check_name(name)
        for d in sequence:
            if d.name == name:
                drafts[d.path].delete.add(d.line)
    changed = {}
    for path, draft in drafts.items():
        if not (draft.replace or draft.delete or draft.after):
            continue  # nothing to do here: rendering 2,000 lines would give the text back
        text = draft.render()
        if text != config.files[path].text:
            changed[path] = text
    return changed


def _check_name(name: str) -> None:
    if not name or any(c in _SPACE or c in "\"'#" for c in name):
        raise ConfError(f"{name!r} is not a directive name")
    if name in NOT_SETTABLE:
        raise ConfError(f"`{name}` lines are structure, not a value — edit them with file_line")


def _plan_set(
    config: Config,
    drafts: dict[str, _Draft],
    sequence: list[Directive],
    name: str,
    args: tuple[str, ...],
) -> None:
    if name in KEYED and not args:
        raise ConfError(f"`{name}` needs its key as the first word of the value")
    occurrences = [
        d
        for d in sequence
        if d.name == name and (name not in KEYED or _key(name, d.args) == _key(name, args))
    ]
    if name in ACCUMULATING:
        current = effective(occurrences).get(name)
        have = current.args if current else ()
        if occurrences and same_args(name, have, args):
            return
        for d in occurrences[:-1]:
            drafts[d.path].delete.add(d.line)
    elif occurrences and same_args(name, occurrences[-1].args, args):
        return
    if occurrences:
        last = occurrences[-1]
        draft = drafts[last.path]
        draft.replace[last.line] = _rewrite(draft.lines[last.line - 1], name, args)
        return
    main = config.files[config.main]
    line = format_line(name, args or ("",))
    example = _example_line(main.text, name)
    drafts[config.main].after.setdefault(example or len(drafts[config.main].lines), []).append(line)


def _rewrite(old_line: str, name: str, args: Sequence[str]) -> str:
    """The new text of a directive line: same indentation and keyword spelling."""
    body = old_line.rstrip("\r\n")
    indent = body[: len(body) - len(body.lstrip(_TRIM))]
    words = body.lstrip(_TRIM).split(None, 1)
    keyword = words[0] if words and words[0].lower() == name else name
    return indent + format_line(keyword, args or ("",))


def _example_line(text: str, name: str) -> int | None:
    """The last commented example of `name` (`# requirepass foobared`), 1-based, or None.

    Case-sensitive: examples are written in lower case, while prose such as
    `# MAXMEMORY POLICY: how ...` must not count as an example of `maxmemory`.
    """
    pattern = re.compile(rf"^[ \t]*#[ \t]*{re.escape(name)}([ \t]|$)")
    found = None
    for number, line in enumerate(text.split("\n"), start=1):
        if pattern.match(line):
            found = number
    return found


def glob_matches(pattern: str, paths: Sequence[str]) -> list[str]:
    """The `paths` an include glob matches, sorted like glob(3) in the C locale.

    Matched component by component: a wildcard never crosses a `/`.
    """
    parts = pattern.split("/")
    return sorted(
        p
        for p in paths
        if len(p.split("/")) == len(parts)
        and all(fnmatchcase(have, want) for have, want in zip(p.split("/"), parts, strict=True))
    )
