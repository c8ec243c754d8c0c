"""The exception tree: every error redmedic reports on purpose.

Foreign exceptions (yaml, jinja2, paramiko, socket, redis-py, pydantic) never escape the module
that calls the foreign library; each is translated into one of these, carrying where it
happened and what to do about it. The CLI turns them into one line and an exit code; a
traceback means a bug in redmedic.

    RedmedicError                 anything redmedic reports deliberately
    ├── InputError                bad input, found before any host is contacted (exit 2)
    │   ├── PlaybookError         malformed YAML, unknown step type or argument, ...
    │   ├── InventoryError        missing file, malformed inventory, unknown --limit pattern
    │   ├── TemplateError         undefined variable, Jinja syntax error
    │   ├── UsageError            bad flag values such as `-e` without `=`
    │   └── PluginError           an installed step-type plugin is broken
    └── HostError                 one host's problem; the other hosts go on
        ├── UnreachableError      the host could not be reached or logged into (exit 4)
        │   ├── ConnectError      refused, timed out, name not resolved
        │   ├── AuthError         the SSH login was refused
        │   └── HostKeyError      unknown or changed host key
        ├── BecomeError           sudo refused: no password, wrong password, not allowed
        ├── CommandError          a command that had to succeed did not
        ├── DriftError            a file changed between planning and applying
        └── StepError             a step cannot do its job on this host (e.g. no systemd)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class RedmedicError(Exception):
    """Base of every deliberate redmedic error; `str()` is the one-line user message."""


class InputError(RedmedicError):
    """Bad input found before any host is contacted.

    `where` is `FILE`, `FILE:LINE` or `FILE:LINE:COL` so editors can jump to it, and `hint`
    says what to do. Both are optional because some input has no file (flags).
    """

    def __init__(self, message: str, *, where: str | None = None, hint: str | None = None):
        self.message = message
        self.where = where
        self.hint = hint
        super().__init__(self._render())

    def _render(self) -> str:
        text = f"{self.where}: {self.message}" if self.where else self.message
        return f"{text} — {self.hint}" if self.hint else text


class PlaybookError(InputError):
    """The playbook file is not a valid redmedic playbook."""


class InventoryError(InputError):
    """The inventory file or a host selection (--limit, hosts:) is invalid."""


class TemplateError(InputError):
    """A Jinja2 template could not be rendered: undefined variable or syntax error."""


class UsageError(InputError):
    """A command-line value is malformed."""


class PluginError(InputError):
    """A `redmedic.steps` entry point cannot be loaded or is not a valid step type."""


class HostError(RedmedicError):
    """A problem confined to one host: reported for that host while the others go on."""

    def __init__(self, host: str, message: str, *, step: str | None = None):
        self.host = host
        self.step = step
        self.message = message
        prefix = f"{host} › {step}" if step else host
        super().__init__(f"{prefix}: {message}")


class UnreachableError(HostError):
    """The host could not be reached or logged into; its status is `unreachable`."""


@contextmanager
def serving(step: str) -> Iterator[None]:
    """A HostError raised inside (a failed read or command) names `step`, the step(s) it
    served, unless it names one already; an unreachable host is no step's doing."""
    try:
        yield
    except HostError as exc:
        if exc.step is None and not isinstance(exc, UnreachableError):
            exc.step = step
        raise


class ConnectError(UnreachableError):
    """TCP/SSH connection failed: refused, timed out, name not resolved, closed."""


class AuthError(UnreachableError):
    """The SSH server refused our credentials."""


class HostKeyError(UnreachableError):
    """The host's key is unknown (strict checking) or differs from known_hosts."""


class BecomeError(HostError):
    """Privilege escalation (sudo) failed."""


class CommandError(HostError):
    """A command that had to succeed failed; the message holds its rc and last lines."""


class DriftError(HostError):
    """A file (or service) changed on the host after it was planned; nothing was written."""


class StepError(HostError):
    """A step cannot do its job on this host, e.g. `service` where there is no systemd."""
