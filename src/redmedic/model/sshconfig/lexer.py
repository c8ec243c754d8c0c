"""Reading ssh_config files into directives, with OpenSSH's syntax and its Include rules.

A line is `Keyword Arguments` or `Keyword=Arguments`; keywords are case-insensitive,
arguments may be quoted ("..." or '...'), `#` starts a comment where an argument could start.
The values of the options redmedic honours are checked here for *every* line, also in blocks
that match no host, because ssh refuses such a file too: a bad Port is an error at FILE:LINE
before any host is contacted, not a surprise on the one host it applies to.
`Include` is expanded when the file is read (globs, `~`, relative to ~/.ssh for the user's
files and /etc/ssh for the system's), so evaluating the config per host reads no file.
"""

from __future__ import annotations

import glob
import ipaddress
import os
import re
import socket
import stat
from dataclasses import dataclass, field
from typing import Any

from redmedic.errors import InventoryError

MAX_INCLUDE_DEPTH = 16  # OpenSSH's READCONF_MAX_DEPTH

_WHITESPACE = " \t\r\n"
_TIME = re.compile(r"(?:\d+[smhdw])*\d*", re.IGNORECASE)
_TIME_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_FLAGS = {"yes": True, "true": True, "no": False, "false": False}


class BadLine(Exception):
    """A line ssh would refuse; the caller adds where it is (a file line or a host variable)."""


@dataclass(frozen=True)
class JumpSpec:
    """One `[user@]host[:port]` (or `ssh://user@host:port`) of a ProxyJump value."""

    host: str
    user: str | None = None
    port: int | None = None


@dataclass(frozen=True)
class Directive:
    """One `Keyword arguments` line.

    `value` is the checked value of an option redmedic honours (see `_VALUES`), None for
    others. `includes` are the files an `Include` names, already read, in glob order.
    """

    name: str  # the keyword as written
    key: str  # lower case
    args: tuple[str, ...]
    raw: str  # the text after the keyword: ProxyCommand and Match read it themselves
    where: str  # FILE:LINE
    value: Any = None
    includes: tuple[ConfigFile, ...] = field(default=(), repr=False)

    @classmethod
    def option(cls, name: str, value: str | int, where: str) -> Directive:
        """An option line redmedic makes up itself (from the inventory or ProxyJump)."""
        text = str(value)
        return cls(name, name.lower(), (text,), text, where, value)


@dataclass(frozen=True)
class ConfigFile:
    """One ssh_config file's directives, with its Includes already read."""

    path: str
    directives: tuple[Directive, ...]
    match_final: bool  # a `Match final` somewhere in it or its includes: ssh re-parses


# --- splitting one line -----------------------------------------------------------------------


def _strdelim(text: str) -> tuple[str | None, str]:
    """The keyword and the rest, as OpenSSH's strdelim splits them (one `=` may separate)."""
    match = re.search(r'[ \t\r\n"=]', text)
    if match is None:
        return text, ""
    at = match.start()
    if text[at] == '"':
        end = text.find('"', at + 1)
        if end == -1:
            return None, ""
        word = text[:at] + text[at + 1 : end]
        return word, text[end + 1 :].lstrip(_WHITESPACE)
    word, rest = text[:at], text[at + 1 :].lstrip(_WHITESPACE)
    if text[at] != "=" and rest.startswith("="):
        rest = rest[1:].lstrip(_WHITESPACE)
    return word, rest


def split_args(text: str) -> list[str]:
    """OpenSSH's argv_split: quotes '...' "...", backslash escapes, `#` ends the line."""
    args: list[str] = []
    i, n = 0, len(text)
    while i < n:
        if text[i] in " \t":
            i += 1
            continue
        if text[i] == "#":
            break
        quote, word = "", []
        while i < n:
            char = text[i]
            if char == "\\" and i + 1 < n and text[i + 1] in ("'\"\\" + ("" if quote else " ")):
                word.append(text[i + 1])
                i += 2
                continue
            if not quote and char in " \t":
                break
            if not quote and char in "\"'":
                quote = char
            elif quote and char == quote:
                quote = ""
            else:
                word.append(char)
            i += 1
        if quote:
            raise BadLine("unbalanced quotes")
        args.append("".join(word))
    return args


def parse_line(line: str, where: str) -> Directive | None:
    """One line as a Directive; None for blank and comment lines. Raises BadLine."""
    text = line.rstrip(_WHITESPACE + "\f").lstrip(_WHITESPACE)
    if not text or text.startswith("#"):
        return None
    name, rest = _strdelim(text)
    if name is None:
        raise BadLine("unbalanced quotes")
    if not name or name.startswith("#"):
        return None
    rest = rest.lstrip(_WHITESPACE)
    if not rest:
        raise BadLine(f"{name} needs a value")
    key = name.lower()
    args = tuple(split_args(rest))
    check = _VALUES.get(key)
    value = check(args, rest) if check is not None else None
    return Directive(name, key, args, rest, where, value)


# --- the values of the options redmedic honours ----------------------------------------------


def _one(args: tuple[str, ...]) -> str:
    if not args or not args[0]:
        raise BadLine("needs a value")
    if len(args) > 1:
        raise BadLine(f"takes one value, got {len(args)} (quote a value with spaces)")
    return args[0]


def parse_port(text: str) -> int:
    """A port number 1-65535 or a service name from /etc/services, as ssh's a2port."""
    if text.isdigit():
        port = int(text)
    else:
        try:
            port = socket.getservbyname(text, "tcp")
        except OSError:
            port = 0
    if not 1 <= port <= 65535:
        raise BadLine(f"bad port {text!r}: use a number 1-65535")
    return port


def _time(args: tuple[str, ...], _raw: str) -> int | None:
    """Seconds, in ssh's time format (`30`, `1m30s`, `2h`); `none` means unset."""
    text = _one(args)
    if text == "none":
        return None
    if not text or not _TIME.fullmatch(text):
        raise BadLine(f"bad time {text!r}: use seconds, e.g. 30 or 1m30s")
    total = 0
    for number, unit in re.findall(r"(\d+)([smhdw]?)", text, re.IGNORECASE):
        total += int(number) * _TIME_UNITS[(unit or "s").lower()]
    return total


def _count(args: tuple[str, ...], _raw: str) -> int:
    text = _one(args)
    if not text.isdigit():
        raise BadLine(f"bad number {text!r}: use a whole number, e.g. 3")
    return int(text)


def _flag(args: tuple[str, ...], _raw: str) -> bool:
    text = _one(args).lower()
    if text not in _FLAGS:
        raise BadLine(f"bad value {args[0]!r}: use yes or no")
    return _FLAGS[text]


def _string(args: tuple[str, ...], _raw: str) -> str:
    return _one(args)


def _file_list(args: tuple[str, ...], _raw: str) -> tuple[str, ...]:
    if not args or any(not a for a in args):
        raise BadLine("empty file name")
    if any(a.lower() == "none" for a in args) and len(args) > 1:
        raise BadLine('"none" must appear alone')
    return () if args[0].lower() == "none" else args


def _command(_args: tuple[str, ...], raw: str) -> str:
    return raw.lstrip(_WHITESPACE + "=")


def parse_jump(text: str) -> tuple[JumpSpec, ...]:
    """A ProxyJump value: comma-separated hops, first hop first; `none` is ()."""
    text = text.split("#", 1)[0].strip()
    if text.lower() == "none":
        return ()
    return tuple(_jump_spec(part.strip()) for part in text.split(","))


def _jump_spec(text: str) -> JumpSpec:
    rest = text[len("ssh://") :] if text.lower().startswith("ssh://") else text
    user = None
    if "@" in rest:
        user, rest = rest.rsplit("@", 1)
        if not user:
            raise BadLine(f"bad ProxyJump host {text!r}: empty user")
    port: int | None = None
    if rest.startswith("["):
        host, sep, tail = rest[1:].partition("]")
        if not sep or (tail and not tail.startswith(":")):
            raise BadLine(f"bad ProxyJump host {text!r}")
        if tail:
            port = parse_port(tail[1:])
    elif rest.count(":") == 1:
        host, port_text = rest.split(":")
        port = parse_port(port_text)
    else:
        host = rest
    if not host or re.search(r"[\s/'\"]", host):
        raise BadLine(f"bad ProxyJump host {text!r}: use [user@]host[:port]")
    return JumpSpec(host, user, port)


def _jump(_args: tuple[str, ...], raw: str) -> tuple[JumpSpec, ...]:
    return parse_jump(raw.lstrip(_WHITESPACE + "="))


def _port(args: tuple[str, ...], _raw: str) -> int:
    return parse_port(_one(args))


@dataclass(frozen=True)
class Criterion:
    """One `[!]attribute [patterns]` of a Match line."""

    attribute: str  # lower case
    negate: bool
    argument: str | None


# Match attributes of newer OpenSSH releases, or that run things: not evaluated (a warning).
UNEVALUATED_MATCH = frozenset(
    {"exec", "tagged", "localnetwork", "version", "sessiontype", "command"}
)
_MATCH_WITH_ARGUMENT = frozenset({"host", "originalhost", "user", "localuser"}) | UNEVALUATED_MATCH


def _match(_args: tuple[str, ...], raw: str) -> tuple[Criterion, ...]:
    """The criteria of a Match line, split and checked as OpenSSH's match_cfg_line does."""
    words: list[str] = []
    rest = raw
    while rest:
        word, rest = _strdelim(rest)
        if word is None:
            raise BadLine("unbalanced quotes")
        if word.startswith("#"):
            break
        if word:
            words.append(word)
    criteria: list[Criterion] = []
    while words:
        word = words.pop(0)
        negate = word.startswith("!")
        attribute = word[1:].lower() if negate else word.lower()
        if attribute == "all":
            if len(criteria) > 1 or words:
                raise BadLine("Match all cannot be combined with other criteria")
            criteria.append(Criterion("all", negate, None))
        elif attribute in ("canonical", "final"):
            criteria.append(Criterion(attribute, negate, None))
        elif attribute in _MATCH_WITH_ARGUMENT:
            if not words:
                raise BadLine(f"Match {attribute} needs patterns")
            criteria.append(Criterion(attribute, negate, words.pop(0)))
        else:
            raise BadLine(f"unsupported Match criterion {word!r}")
    if not criteria:
        raise BadLine("Match needs a criterion, e.g. `Match host web*` or `Match all`")
    return tuple(criteria)


_VALUES = {
    "hostname": _string,
    "user": _string,
    "port": _port,
    "identityfile": _string,
    "identityfile2": _string,
    "identitiesonly": _flag,
    "userknownhostsfile": _file_list,
    "globalknownhostsfile": _file_list,
    "hostkeyalias": _string,
    "connecttimeout": _time,
    "serveraliveinterval": _time,
    "serveralivecountmax": _count,
    "proxycommand": _command,
    "proxyjump": _jump,
    "ignoreunknown": _string,
    "match": _match,
}


def is_address(text: str) -> bool:
    """An IPv4/IPv6 literal (ssh neither lowercases nor looks those up)."""
    if ":" not in text and not text.replace(".", "").isdigit():
        return False  # most names: skip ipaddress's slower parse
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


# --- reading files ---------------------------------------------------------------------------


def read_config(
    path: str, *, user_file: bool, check_owner: bool, home: str, depth: int = 0
) -> ConfigFile | None:
    """Read one config file and its Includes; None if it does not exist.

    `user_file` is OpenSSH's "user configuration": relative Includes are found in ~/.ssh
    (else /etc/ssh) and `~` is allowed in them. `check_owner` refuses a file others may
    write, as ssh does for ~/.ssh/config and every included file: such a file could
    smuggle in a ProxyCommand, which redmedic would run.
    """
    if depth > MAX_INCLUDE_DEPTH:
        raise InventoryError(
            f"Include nested more than {MAX_INCLUDE_DEPTH} deep",
            where=path,
            hint="an Include probably includes itself: break the loop",
        )
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as handle:
            if check_owner:
                _check_owner(path, os.fstat(handle.fileno()))
            text = handle.read()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None
    except OSError as exc:
        raise InventoryError(
            f"cannot read the ssh config: {exc.strerror}",
            where=path,
            hint="fix its permissions, or pass --ssh-config none",
        ) from None
    directives: list[Directive] = []
    final = False
    for number, line in enumerate(text.splitlines(), start=1):
        where = f"{path}:{number}"
        try:
            directive = parse_line(line, where)
        except BadLine as exc:
            raise InventoryError(
                str(exc), where=where, hint="fix that line (see `man ssh_config`)"
            ) from None
        if directive is None:
            continue
        if directive.key == "include":
            files = tuple(_include(directive, user_file=user_file, home=home, depth=depth))
            directive = Directive(
                directive.name, "include", directive.args, directive.raw, where, None, files
            )
            final = final or any(f.match_final for f in files)
        elif directive.key == "match":
            final = final or any(c.attribute == "final" for c in directive.value)
        elif directive.key == "host" and not directive.args:
            raise InventoryError("Host needs a pattern", where=where, hint="e.g. `Host web*`")
        directives.append(directive)
    return ConfigFile(path, tuple(directives), final)


def _include(directive: Directive, *, user_file: bool, home: str, depth: int) -> list[ConfigFile]:
    files: list[ConfigFile] = []
    for arg in directive.args:
        if arg.startswith("~") and not user_file:
            raise InventoryError(
                f"Include {arg!r}: `~` is not allowed in the system config",
                where=directive.where,
                hint="write the path out in full",
            )
        if arg == "~" or arg.startswith("~/"):
            pattern = home + arg[1:]
        elif arg.startswith("~"):
            pattern = os.path.expanduser(arg)
        elif os.path.isabs(arg):
            pattern = arg
        else:
            pattern = os.path.join(os.path.join(home, ".ssh") if user_file else "/etc/ssh", arg)
        for path in sorted(glob.glob(pattern)):
            found = read_config(
                path, user_file=user_file, check_owner=True, home=home, depth=depth + 1
            )
            if found is not None:
                files.append(found)
    return files


def _check_owner(path: str, info: os.stat_result) -> None:
    if (info.st_uid not in (0, os.getuid())) or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise InventoryError(
            "bad owner or permissions on the ssh config: others could change how hosts are reached",
            where=path,
            hint=f"chmod go-w {path} (ssh refuses it too)",
        )
