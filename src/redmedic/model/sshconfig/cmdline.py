"""`ansible_ssh_common_args` / `ansible_ssh_extra_args`: ssh command-line flags as options.

Ansible appends these to the ssh command line, after its own `-o Port=`, `-o User=` and
`-o IdentityFile=` from the inventory, so (first value wins) they beat the config files but
not the inventory's connection variables. Honoured: `-o Key=Value` (any option line, so the
same as in the config file), `-J`, `-i` (a missing file is dropped with a warning, as ssh
drops it), `-p`, `-l` and `-F` (this host is then resolved through that file only, as
`ssh -F`). Flags that only change ssh's own output (`-q`, `-v`)
or turn off what redmedic never does (`-T`, `-x`, `-a`, `-n`, `-C`) are silent; any
other flag is a warning naming the host and the variable.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, field

from redmedic.model.sshconfig.lexer import BadLine, Directive, parse_line
from redmedic.model.sshconfig.model import SshWarning

# ssh's getopt: flags that take a value, and flags that do not.
_WITH_VALUE = frozenset("bceilmopBDEFIJLOPQRSwW")
_WITHOUT_VALUE = frozenset("1246afgknqstvxACGKMNTVXYy")
_SILENT = frozenset("qvTxanC")
# The flags redmedic honours, as the option line they mean.
_AS_OPTION = {"i": "IdentityFile", "p": "Port", "l": "User", "J": "ProxyJump"}


@dataclass
class CommandLine:
    """What one host's ssh arguments say: option lines, a `-F` file, warnings."""

    directives: list[Directive] = field(default_factory=list)
    config_file: str | None = None
    warnings: list[SshWarning] = field(default_factory=list)


def parse_ssh_args(text: str, variable: str, into: CommandLine) -> None:
    """Add the flags of `text` (the value of the host variable `variable`) to `into`.

    Warnings are located by the variable alone (the CLI lists the hosts each applies
    to); raises BadLine (the caller names host and variable) for what ssh would refuse.
    """
    where = variable
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise BadLine(f"cannot split it as a shell would: {exc}") from None
    while words:
        word = words.pop(0)
        if not word.startswith("-") or word == "-":
            into.warnings.append(SshWarning(where, f"{word!r} is not an ssh flag: ignored"))
            continue
        flags = word[1:]
        while flags:
            flag, flags = flags[0], flags[1:]
            if flag in _WITHOUT_VALUE:
                if flag not in _SILENT:
                    message = f"ssh flag -{flag} is not honoured by redmedic"
                    into.warnings.append(SshWarning(where, message))
                continue
            if flag not in _WITH_VALUE:
                message = f"-{flag} is not an ssh flag: ignored"
                into.warnings.append(SshWarning(where, message))
                continue
            if not flags and not words:
                raise BadLine(f"ssh flag -{flag} needs a value")
            value = flags or words.pop(0)
            flags = ""
            _flag(flag, value, where, into)


def _flag(flag: str, value: str, where: str, into: CommandLine) -> None:
    if flag == "F":
        into.config_file = into.config_file or value
        return
    if flag == "i" and not os.path.exists(os.path.expanduser(value)):
        message = f"-i {value}: no such identity file: ignored (as ssh does)"
        into.warnings.append(SshWarning(where, message))
        return
    if flag == "o":
        line = value
    elif flag in _AS_OPTION:
        line = f"{_AS_OPTION[flag]} {shlex.quote(value) if flag == 'i' else value}"
    else:
        into.warnings.append(SshWarning(where, f"ssh flag -{flag} {value} is not honoured"))
        return
    directive = parse_line(line, where)
    if directive is None:
        raise BadLine(f"-{flag} {value!r} is not an option line")
    if directive.key in ("host", "match", "include"):
        raise BadLine(f"{directive.name} cannot be given with -o, only in a config file")
    into.directives.append(directive)
