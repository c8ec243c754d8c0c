"""Which options apply to one host: OpenSSH's Host/Match evaluation, first value wins.

Mirrors ssh's readconf.c so that redmedic reaches a name exactly as `ssh NAME` would:
command-line options (the inventory's, then `ansible_ssh_common_args`/`extra_args`) come
first, then the files in order; for most options the first value obtained wins,
`IdentityFile` accumulates; ProxyJump and ProxyCommand share one slot. `Host` patterns match
the name as given (case-sensitive); `Match host` the HostName obtained so far. When a file has
`Match final` (or sets CanonicalizeHostname), the files are read a second time for the final
host name, as ssh does; redmedic never canonicalizes names itself (a warning says so).
Options redmedic does not honour become warnings, except the harmless ones in `_SILENT`.
"""

from __future__ import annotations

import functools
import hashlib
import os
import pwd
import re
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from redmedic.errors import InventoryError
from redmedic.model.sshconfig.keywords import OPENSSH_KEYWORDS, SAME_AS_REDMEDIC, SILENT, WHY_NOT
from redmedic.model.sshconfig.lexer import (
    UNEVALUATED_MATCH,
    ConfigFile,
    Criterion,
    Directive,
    is_address,
)
from redmedic.model.sshconfig.model import SshWarning

# Options whose every line counts (the others: the first line obtained is the value).
_ACCUMULATE = frozenset(
    {"localforward", "remoteforward", "dynamicforward", "certificatefile", "sendenv", "setenv"}
)
_FIRST = frozenset(
    {
        "hostname",
        "user",
        "port",
        "identitiesonly",
        "userknownhostsfile",
        "globalknownhostsfile",
        "hostkeyalias",
        "connecttimeout",
        "serveraliveinterval",
        "serveralivecountmax",
        "ignoreunknown",
    }
)


@dataclass(frozen=True)
class Local:
    """The local side ssh's tokens and `Match localuser` read (%u %d %l %L %i)."""

    user: str
    home: str
    hostname: str
    uid: int

    @classmethod
    def current(cls) -> Local:
        """This process's user, $HOME (as Python's `~`), and this machine's host name."""
        uid = os.getuid()
        try:
            user = pwd.getpwuid(uid).pw_name
        except KeyError:
            user = os.environ.get("USER", str(uid))
        return cls(user, os.path.expanduser("~"), socket.gethostname(), uid)


@dataclass(frozen=True)
class Setting:
    """One obtained value and the FILE:LINE (or host variable) it came from."""

    value: Any
    where: str


@dataclass
class Obtained:
    """Everything one host's evaluation obtained, before defaults and tokens."""

    host_arg: str  # the name ssh was given (the inventory's ansible_host, or the host)
    hostname: str  # HostName with %h expanded, lower case unless an address
    first: dict[str, Setting] = field(default_factory=dict)
    identity_files: list[Setting] = field(default_factory=list)
    proxy: Setting | None = None  # value: ("command", str) or ("jump", (JumpSpec, ...))
    warnings: list[SshWarning] = field(default_factory=list)
    canonicalize: bool = False
    named: bool = False  # a HostName was given (the name is an alias)

    def get(self, key: str, default: Any = None) -> Any:
        setting = self.first.get(key)
        return default if setting is None else setting.value

    def apply(self, directive: Directive, active: bool) -> None:
        """Take one option line into account (ssh's process_config_line)."""
        if not active:
            return
        key = directive.key
        if key in _FIRST:
            if directive.value is not None and key not in self.first:
                self.first[key] = Setting(directive.value, directive.where)
        elif key in ("identityfile", "identityfile2"):
            if all(s.value != directive.value for s in self.identity_files):
                self.identity_files.append(Setting(directive.value, directive.where))
        elif key in ("proxycommand", "proxyjump"):
            if self.proxy is None:
                kind = "command" if key == "proxycommand" else "jump"
                self.proxy = Setting((kind, directive.value), directive.where)
        else:
            self._unhonoured(directive)

    def _unhonoured(self, directive: Directive) -> None:
        key = directive.key
        first = directive.args[0].lower() if directive.args else ""
        if key == "canonicalizehostname" and "canonicalizehostname" not in self.first:
            self.canonicalize = first not in ("no", "false")
        if key not in _ACCUMULATE:
            if key in self.first:  # only the first line obtained has an effect
                return
            self.first[key] = Setting(directive.args, directive.where)
        if key in SILENT or first in SAME_AS_REDMEDIC.get(key, ()):
            return
        if key not in OPENSSH_KEYWORDS:
            ignored = self.get("ignoreunknown")
            if ignored is not None and match_list(key, ignored, lower=True) == 1:
                return
            message = f"{directive.name} is not an OpenSSH option (a typo?): ignored"
        else:
            why = WHY_NOT.get(key, "redmedic does not honour it")
            message = f"{directive.name} {directive.raw} is not honoured: {why}"
        self.warnings.append(SshWarning(directive.where, message))


def evaluate(
    files: Sequence[ConfigFile], host_arg: str, cmdline: Sequence[Directive], local: Local
) -> Obtained:
    """The options `ssh host_arg` would use, with `cmdline` given on its command line."""
    found = Obtained(host_arg, host_arg)
    for directive in cmdline:
        found.apply(directive, True)
    walk = _Walk(found, local, host_arg, final=False)
    for config in files:
        walk.file(config, active=True, never=False)
    hostname = found.first.get("hostname")
    host = host_arg
    if hostname is not None:
        host = expand(hostname.value, {"h": host_arg}, hostname.where)
        found.named = True
    found.hostname = host if is_address(host) else host.lower()
    if found.canonicalize or any(config.match_final for config in files):
        where = hostname.where if hostname is not None else ""
        found.first["hostname"] = Setting(found.hostname, where)
        walk = _Walk(found, local, found.hostname, final=True)
        for config in files:
            walk.file(config, active=True, never=False)
    return found


@dataclass
class _Walk:
    """One pass over the files for one host name."""

    found: Obtained
    local: Local
    host: str  # what Host patterns match: the name given, or the final name on pass 2
    final: bool

    def file(self, config: ConfigFile, *, active: bool, never: bool) -> None:
        for directive in config.directives:
            if directive.key == "host":
                active = not never and host_matches(self.host, directive.args)
            elif directive.key == "match":
                matched = self.match(directive)
                active = matched and not never
            elif directive.key == "include":
                for included in directive.includes:  # each starts in this block's state
                    self.file(included, active=active, never=never or not active)
            else:
                self.found.apply(directive, active)

    def match(self, directive: Directive) -> bool:
        found = self.found
        hostname = found.first.get("hostname")
        if self.final:
            host = found.hostname
        elif hostname is not None:
            host = expand(hostname.value, {"h": found.host_arg}, hostname.where)
        else:
            host = found.host_arg
        result = True
        unevaluated: list[Criterion] = []
        criterion: Criterion
        for criterion in directive.value:
            attribute, argument = criterion.attribute, criterion.argument or ""
            if attribute == "all":
                result = result and not criterion.negate
                break
            if attribute in UNEVALUATED_MATCH:
                unevaluated.append(criterion)
                continue
            if attribute in ("canonical", "final"):
                hit = self.final
            elif attribute == "host":
                hit = match_list(host.lower(), argument, lower=True) == 1
            elif attribute == "originalhost":
                hit = match_list(found.host_arg.lower(), argument, lower=True) == 1
            elif attribute == "user":
                hit = match_list(found.get("user", self.local.user), argument, lower=False) == 1
            else:  # localuser
                hit = match_list(self.local.user, argument, lower=False) == 1
            if hit == criterion.negate:
                result = False
        if result and unevaluated:
            names = ", ".join(("!" if c.negate else "") + c.attribute for c in unevaluated)
            found.warnings.append(
                SshWarning(
                    directive.where,
                    f"Match {names} is not evaluated by redmedic: the block is skipped",
                )
            )
            return False
        return result


# --- patterns -------------------------------------------------------------------------------


@functools.lru_cache(maxsize=512)
def _pattern(pattern: str) -> re.Pattern[str]:
    """OpenSSH's wildcards: `*` any run, `?` one character, nothing else is special."""
    return re.compile(
        "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern), re.DOTALL
    )


def host_matches(host: str, patterns: Sequence[str]) -> bool:
    """A `Host` line: any pattern matches and no `!pattern` does."""
    matched = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        if _pattern(pattern[1:] if negate else pattern).fullmatch(host):
            if negate:
                return False
            matched = True
    return matched


def match_list(text: str, patterns: str, *, lower: bool) -> int:
    """OpenSSH's match_pattern_list: 1 a pattern matched, 0 none, -1 a `!pattern` matched."""
    matched = 0
    for pattern in patterns.split(","):
        negate = pattern.startswith("!")
        body = pattern[1:] if negate else pattern
        if _pattern(body.lower() if lower else body).fullmatch(text):
            if negate:
                return -1
            matched = 1
    return matched


# --- tokens ---------------------------------------------------------------------------------


def expand(text: str, tokens: Mapping[str, str], where: str, *, environment: bool = False) -> str:
    """Replace %x tokens (and ${VAR} where ssh allows it); an unknown token is an error."""
    if "%" not in text and not (environment and "${" in text):
        return text
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if environment and text.startswith("${", i):
            end = text.find("}", i)
            name = text[i + 2 : end] if end != -1 else ""
            if not name or name not in os.environ:
                raise _token_error(f"${{{name}}}: environment variable not set", where)
            out.append(os.environ[name])
            i = end + 1
            continue
        if char == "%":
            token = text[i + 1 : i + 2]
            if token == "%":
                out.append("%")
            elif token in tokens:
                out.append(tokens[token])
            else:
                raise _token_error(f"unknown token %{token} in {text!r}", where)
            i += 2
            continue
        out.append(char)
        i += 1
    return "".join(out)


def _token_error(message: str, where: str) -> InventoryError:
    return InventoryError(
        message, where=where or None, hint="see TOKENS in `man ssh_config` for what each allows"
    )


def connection_hash(local: Local, host: str, port: int, user: str) -> str:
    """%C: SHA-1 of %l%h%p%r, as ssh computes it."""
    return hashlib.sha1(f"{local.hostname}{host}{port}{user}".encode()).hexdigest()
