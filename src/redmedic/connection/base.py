"""The connection contract every step talks to, implemented once on top of one primitive.

Steps never touch paramiko or subprocess: they call `run`, `read_file`, `write_file`,
`restore_file` and `forward` on a `Connection`. Each transport (SSH, local, a scripted fake in
tests) only supplies `_exec` — "run this POSIX sh command with these stdin bytes, give me the
exit code and the raw output" — so sudo handling, the atomic-write script and every error
message are written, reviewed and tested exactly once.

Why the file operations are shell scripts (`scripts`) rather than SFTP: each one is a single
round trip (stat + content, or drift check + backup + temp write + rename), works through sudo
the same way as any command, and needs nothing on the host beyond POSIX sh and GNU coreutils.
"""

from __future__ import annotations

import secrets
import shlex
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from types import TracebackType

from redmedic.connection.lookahead import Lookahead
from redmedic.connection.scripts import (
    DRIFT_RC,
    MARK,
    batch_script,
    parse_batch_output,
    parse_stat_line,
    read_script,
    restore_script,
    write_script,
)
from redmedic.connection.traffic import Traffic
from redmedic.errors import BecomeError, CommandError, DriftError
from redmedic.model.inventory import Host

# Re-exported: connection/ is where steps and plugins have always found these.
from redmedic.model.remote import ENCODING as ENCODING
from redmedic.model.remote import ERRORS as ERRORS
from redmedic.model.remote import RemoteFile as RemoteFile


@dataclass(frozen=True)
class ConnectOptions:
    """How to open connections: host-key policy and timeouts, shared by every host of a run.

    `known_hosts_files` are read in addition to the host's UserKnownHostsFile and
    GlobalKnownHostsFile (OpenSSH's defaults: `~/.ssh/known_hosts`,
    `/etc/ssh/ssh_known_hosts`); with `trust_new_host_keys` an unknown key is recorded in
    the first of them (or the first UserKnownHostsFile) instead of refused — a changed key
    is always refused. `connect_timeout` applies where the host's ssh config sets no
    ConnectTimeout. `command_timeout` bounds every command (None waits forever): the
    library default is None, the CLI's `--command-timeout` default is `COMMAND_TIMEOUT_S`.
    `retries` is how often a connection that failed to open (ConnectError only) is tried
    again, with backoff (see `connection.retry`).
    """

    known_hosts_files: tuple[str, ...] = ()
    trust_new_host_keys: bool = False
    connect_timeout: float = 10.0
    command_timeout: float | None = None
    retries: int = 0


#: The CLI's default `--command-timeout`: longer than systemd's own stop + start timeouts
#: (90 s each by default), so a slow but working `systemctl restart` is never cut short, and
#: short enough that a wedged command does not hold an on-call engineer's run for long.
COMMAND_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class CommandResult:
    """What one remote command did. A non-zero `rc` is data, not an exception.

    `command` is the command as the caller wrote it (never the sudo wrapper, never a secret).
    Output is decoded UTF-8 with surrogateescape: `stdout.encode("utf-8", "surrogateescape")`
    gives back the exact bytes.
    """

    command: str
    rc: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        """True when the command exited 0."""
        return self.rc == 0

    def tail(self, lines: int = 5) -> str:
        """The last `lines` lines of the output that most likely explains the result.

        stderr when it has anything to say (that is where tools put their reasons), stdout
        otherwise (some tools report errors there) — used in error messages.
        """
        text = self.stderr if self.stderr.strip() else self.stdout
        kept = text.rstrip("\n").splitlines()[-lines:] if lines > 0 else []
        return "\n".join(kept)


class _Become(Enum):
    """How this connection becomes the become user (root unless `ansible_become_user`),
    decided once per connection on first use."""

    SELF = "self"  # already that user (root logged in as root): run commands as they are
    NOPASSWD = "nopasswd"  # sudo -n works
    PASSWORD = "password"  # sudo -S with the (validated) password on stdin


class CommandTimeout(CommandError):
    """A CommandError whose cause is the timeout: the message names the flag to raise.

    Kept here, beside the one function that makes it, so a batch can re-word it.
    """

    def __init__(self, host: str, what: str, timeout: float | None, detail: str) -> None:
        self.timeout, self.detail = timeout, detail
        super().__init__(
            host,
            f"{what} did not finish within {timeout or 0:g} s ({detail}) — "
            "if it is only slow, raise --command-timeout (0 waits forever)",
        )


def timeout_error(host: str, command: str, timeout: float | None, detail: str) -> CommandTimeout:
    """A command that outlived its timeout (steps never pass their own: it is the run's)."""
    return CommandTimeout(host, f"`{short_command(command)}`", timeout, detail)


def short_command(command: str, width: int = 80) -> str:
    """One display line for a command: scripts are long, messages should not be."""
    first = command.strip().splitlines()[0] if command.strip() else ""
    more = len(command.strip().splitlines()) > 1
    if len(first) > width or more:
        return first[: width - 1] + "…"
    return first


# Reads a header line, then exactly that many bytes of script (dd bs=1 never reads ahead),
# and runs them in this shell, whose stdin is then what follows: the command's own input.
# `.` keeps the script's trailing newlines, which $(...) would strip (a here-document needs them).
SCRIPT_READER = (
    'IFS=" " read -r _ n && s=$(dd bs=1 count="$n" 2>/dev/null; echo .) && eval "${s%.}"'
)
SCRIPT_HEADER = b"redmedic-script %d\n"


def script_on_stdin(command: str) -> tuple[str, bytes]:
    """(the command line to run, the stdin to send before the command's own) for `command`.

    Commands carry secrets (a requirepass in a redis-cli call, a playbook's `-a {{ pw }}`),
    and a command line is world-readable in `ps` and /proc/PID/cmdline on the host: only
    SCRIPT_READER is ever there; the command itself travels over the channel's stdin.
    """
    script = command.encode(ENCODING, ERRORS)
    return SCRIPT_READER, SCRIPT_HEADER % len(script) + script


def _sudo_user(user: str | None) -> str:
    """`-u USER ` for a become user other than root (sudo's own default), else nothing."""
    return f"-u {shlex.quote(user)} " if user and user != "root" else ""


def sudo_command(command: str, *, with_password: bool, user: str | None = None) -> str:
    """Wrap `command` for sudo, as `user` (root when None). The password, if any, travels
    on stdin — never in argv.

    `-k` makes sudo ignore cached credentials so it reads the password line every time and
    never leaves it for the command; `-p ''` keeps the prompt out of stderr.
    """
    inner = f"/bin/sh -c {shlex.quote(command)}"
    if with_password:
        return f"sudo -S -k -p '' {_sudo_user(user)}-- {inner}"
    return f"sudo -n {_sudo_user(user)}-- {inner}"


def become_probe(user: str | None, *, validate: bool = False) -> str:
    """One round trip: are we already `user` (root when None), is there sudo, does it need
    a password to become `user` — and, with `validate`, is the password on stdin right?

    Why the password check is folded in: it was a second exec (3 round trips on a slow
    network) on every host that becomes with a password. Its stdin holds the password line
    and nothing else, so a wrong password can never make sudo read data as more attempts;
    sudo's complaint follows a `sudo:` line for the caller to judge.
    """
    if user and user != "root":
        already = f'[ "$(id -un)" = {shlex.quote(user)} ]'
    else:
        already = '[ "$u" = 0 ]'
    check = (
        f"if out=$(sudo -S -k -p '' {_sudo_user(user)}true 2>&1); then echo validated; "
        "else echo sudo:; printf '%s\\n' \"$out\"; fi\n"
        if validate
        else ""
    )
    return (
        "LC_ALL=C; export LC_ALL\n"
        "u=$(id -u) || exit 1\n"
        'echo "uid=$u"\n'
        f"{already} && {{ echo self; exit 0; }}\n"
        "command -v sudo >/dev/null 2>&1 || { echo nosudo; exit 0; }\n"
        f"sudo -n {_sudo_user(user)}true 2>&1 && {{ echo nopasswd; exit 0; }}\n"
        f"{check}"
        "exit 0\n"
    )


_SUDO_UNKNOWN_USER = "unknown user"
_NEEDS_PASSWORD = "sudo needs a password — set ansible_become_password (or pass -K to be asked)"
_SUDO_DENIED = ("not in the sudoers", "not allowed to", "may not run sudo")
_SUDO_BAD_PASSWORD = ("incorrect password", "no password was provided", "Sorry, try again")


class Connection(ABC):
    """One open session to one host, used by every step of a run (never re-opened per step).

    A context manager: `with connect(host, options) as conn: ...` closes it on every exit.
    Subclasses implement `_exec` (and `forward` when the host's loopback is not ours).
    """

    def __init__(self, host: Host, *, command_timeout: float | None = None) -> None:
        self.host = host
        self._command_timeout = command_timeout
        self._become: _Become | None = None
        self._become_lock = threading.Lock()
        # What this connection cost on the wire (`-vvv`); the executor names the phases.
        self.traffic = Traffic()
        # While the executor plans: reads already answered in one batch (`lookahead`).
        self.lookahead: Lookahead | None = None

    # -- the primitive -------------------------------------------------------------------

    @abstractmethod
    def _exec(self, command: str, stdin: bytes, timeout: float | None) -> tuple[int, bytes, bytes]:
        """Run `command` with POSIX /bin/sh semantics; return (rc, stdout, stderr) bytes.

        Raises ConnectError when the connection is gone and CommandError on timeout; a
        non-zero exit status is returned, never raised.
        """

    @abstractmethod
    def close(self) -> None:
        """Release the connection; safe to call twice."""

    # -- public API ----------------------------------------------------------------------

    def __enter__(self) -> Connection:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def run(
        self,
        command: str,
        *,
        become: bool = False,
        stdin: bytes = b"",
        timeout: float | None = None,
    ) -> CommandResult:
        """Run a shell command and return its result; a failing command is data, not an error.

        Raises ConnectError if the connection dropped, BecomeError when sudo refuses, and
        CommandError when `timeout` (default: the connection's command timeout) passes.
        """
        if self.lookahead is not None and not stdin and timeout is None:
            known = self.lookahead.answer(command, become)
            if known is not None:
                return known
        rc, out, err = self._run_bytes(command, become=become, stdin=stdin, timeout=timeout)
        return CommandResult(
            command=command,
            rc=rc,
            stdout=out.decode(ENCODING, ERRORS),
            stderr=err.decode(ENCODING, ERRORS),
        )

    def run_many(
        self,
        commands: Sequence[str],
        *,
        become: bool = False,
        timeout: float | None = None,
    ) -> list[CommandResult]:
        """Run commands one after the other in ONE round trip; results as `run` gives them.

        For read-only commands that do not need each other's output (diagnose steps): one
        remote exec (and one sudo) instead of one per command — each channel costs the
        host an sshd session and a shell, and the caller a round trip. Every command runs
        whatever the previous ones returned, in a subshell of one `/bin/sh` (see
        `batch_script`: `$$` is that shell's, and a syntax error's message says `eval:`);
        none gets stdin. `timeout` is for the whole batch. Raises like `run`, and
        CommandError when the batch itself breaks off.
        """
        if not commands:
            return []
        if self.lookahead is not None and timeout is None:
            known = self.lookahead.answer_all(commands, become)
            if known is not None:
                return known
        nonce = "redmedic-" + secrets.token_hex(16)
        try:
            rc, out, err = self._run_bytes(
                "exec /bin/sh -s",
                become=become,
                stdin=batch_script(commands, nonce).encode(ENCODING, ERRORS),
                timeout=timeout,
            )
        except CommandTimeout as exc:  # name what ran, not the batch's wrapper
            what = f"one of {len(commands)} batched commands (`{short_command(commands[0])}`, …)"
            raise CommandTimeout(self.host.name, what, exc.timeout, exc.detail) from None
        try:
            done = parse_batch_output(out, err, len(commands), nonce)
        except ValueError:
            tail = err.replace(f"\n{nonce}\n".encode(), b"\n")
            raise self._command_error(
                f"a batch of {len(commands)} commands broke off", rc, b"", tail
            ) from None
        return [
            CommandResult(
                command=command,
                rc=code,
                stdout=stdout.decode(ENCODING, ERRORS),
                stderr=stderr.decode(ENCODING, ERRORS),
            )
            for command, (code, stdout, stderr) in zip(commands, done, strict=True)
        ]

    def read_file(self, path: str, *, become: bool = False) -> RemoteFile | None:
        """Read a file's bytes, mode, owner and group in one round trip; None if it is absent."""
        if self.lookahead is not None:
            known = self.lookahead.answer(read_script(path), become)
            if known is not None:
                return self.file_from_result(path, known)
        rc, out, err = self._run_bytes(read_script(path), become=become)
        return self._file_from(path, rc, out, err)

    def file_from_result(self, path: str, result: CommandResult) -> RemoteFile | None:
        """The file `read_script(path)` returned as one command of a `run_many` batch.

        Lets a caller fold file reads into a batch of other commands (one round trip for
        both); raises exactly as `read_file` would.
        """
        out = result.stdout.encode(ENCODING, ERRORS)
        return self._file_from(path, result.rc, out, result.stderr.encode(ENCODING, ERRORS))

    def _file_from(self, path: str, rc: int, out: bytes, err: bytes) -> RemoteFile | None:
        if rc != 0:
            raise self._command_error(f"cannot read {path}", rc, out, err)
        marker, _, rest = out.partition(b"\n")
        if marker == f"{MARK}absent".encode():
            return None
        stat_line, newline, content = rest.partition(b"\n")
        try:
            if marker != f"{MARK}file".encode() or not newline:
                raise ValueError(f"unexpected output {out[:80]!r}")
            mode, owner, group = parse_stat_line(stat_line.decode(ENCODING, ERRORS))
        except ValueError as exc:
            raise CommandError(self.host.name, f"cannot read {path}: {exc}") from None
        return RemoteFile(path=path, content=content, mode=mode, owner=owner, group=group)

    def write_file(
        self,
        path: str,
        content: bytes,
        *,
        expected_sha256: str | None,
        become: bool = False,
        mode: int | None = None,
        backup: bool = True,
    ) -> str | None:
        """Atomically replace (or create) a file, refusing if it changed since it was read.

        `expected_sha256` is `RemoteFile.sha256` from the read the plan was made from (None:
        the file must not exist yet). The new file keeps the old owner, group and mode
        (`mode`, when given, wins; new files get `mode` or 0666 minus the umask). Returns the
        backup path, or None when the file was created. Raises DriftError (nothing written)
        or CommandError (target untouched) — one round trip either way.
        """
        script = write_script(path, expected_sha256, mode, backup)
        rc, out, err = self._run_bytes(script, become=become, stdin=content)
        lines = out.decode(ENCODING, ERRORS).splitlines()
        if rc == DRIFT_RC:
            found = next((ln for ln in lines if ln.startswith(f"{MARK}drift ")), None)
            if found is not None:
                raise DriftError(self.host.name, _drift_message(path, found.split(" ", 1)[1]))
        if rc != 0:
            raise self._command_error(f"cannot write {path} ({path} is unchanged)", rc, out, err)
        backups = [ln.split(" ", 1)[1] for ln in lines if ln.startswith(f"{MARK}backup ")]
        return backups[0] if backups else None

    def restore_file(self, path: str, backup: str | None, *, become: bool = False) -> None:
        """Roll a `write_file` back: put `backup` back atomically, or delete what we created."""
        rc, out, err = self._run_bytes(restore_script(path, backup), become=become)
        if rc != 0:
            what = f"cannot restore {path} from {backup}" if backup else f"cannot remove {path}"
            raise self._command_error(what, rc, out, err)

    @contextmanager
    def forward(self, remote_host: str, remote_port: int) -> Iterator[tuple[str, int]]:
        """Reach `remote_host:remote_port` as the target sees it; yields a local address.

        The default suits connections whose network is ours (local): the address itself.
        SSH tunnels it (direct-tcpip) so probes can talk to a Redis bound to the host's
        own 127.0.0.1.
        """
        yield (remote_host, remote_port)

    # -- internals -----------------------------------------------------------------------

    def _run_bytes(
        self,
        command: str,
        *,
        become: bool = False,
        stdin: bytes = b"",
        timeout: float | None = None,
    ) -> tuple[int, bytes, bytes]:
        if timeout is None:
            timeout = self._command_timeout
        if not become:
            return self._exec(command, stdin, timeout)
        how = self._become_mode()
        if how is _Become.SELF:
            return self._exec(command, stdin, timeout)
        with_password = how is _Become.PASSWORD
        prefix = self._password_line() if with_password else b""
        reader, script = script_on_stdin(command)  # sudo's argv is on the host's `ps` too
        wrapped = sudo_command(reader, with_password=with_password, user=self.host.become_user)
        rc, out, err = self._exec(wrapped, prefix + script + stdin, timeout)
        if rc == 1 and err.startswith(b"sudo: "):
            self._raise_for_sudo(err.decode(ENCODING, ERRORS), validated=True)
        return rc, out, err

    def _password_line(self) -> bytes:
        password = self.host.become_password or ""
        return password.encode(ENCODING) + b"\n"

    def _become_mode(self) -> _Become:
        """Decide once, on the first become, how to get root (thread-safe)."""
        with self._become_lock:
            if self._become is None:
                self._become = self._probe_become()
            return self._become

    def _probe_become(self) -> _Become:
        user = self.host.become_user
        target = user or "root"
        validate = self.host.become_password is not None
        stdin = self._password_line() if validate else b""
        probe = become_probe(user, validate=validate)
        rc, out, err = self._exec(probe, stdin, self._command_timeout)
        text = out.decode(ENCODING, ERRORS)
        lines = text.splitlines()
        if rc != 0 or not lines or not lines[0].startswith("uid="):
            raise self._command_error("cannot find out the login user's id", rc, out, err)
        if "self" in lines:
            return _Become.SELF
        if "nosudo" in lines:
            raise BecomeError(
                self.host.name,
                f"become needs sudo, which is not installed — install sudo or log in as {target}",
            )
        if "nopasswd" in lines:
            return _Become.NOPASSWD
        said = "\n".join(lines[1:])
        if any(phrase in said for phrase in (*_SUDO_DENIED, _SUDO_UNKNOWN_USER)):
            self._raise_for_sudo(said, validated=False)
        if not validate:
            raise BecomeError(self.host.name, _NEEDS_PASSWORD)
        if "validated" not in lines:
            complaint = "\n".join(lines[lines.index("sudo:") + 1 :]) if "sudo:" in lines else said
            self._raise_for_sudo(complaint, validated=False)
        return _Become.PASSWORD

    def _raise_for_sudo(self, said: str, *, validated: bool) -> None:
        """Turn sudo's own complaint into a BecomeError; the password is never quoted."""
        user = self.host.user or "the login user"
        target = self.host.become_user or "root"
        if _SUDO_UNKNOWN_USER in said:
            raise BecomeError(
                self.host.name,
                f"the become user {target} does not exist here — check ansible_become_user "
                "(or --become-user)",
            )
        if any(phrase in said for phrase in _SUDO_DENIED):
            raise BecomeError(
                self.host.name,
                f"sudo refused: {user} may not run commands as {target} here — "
                "add a sudoers rule or use another ansible_user",
            )
        if any(phrase in said for phrase in _SUDO_BAD_PASSWORD) or not validated:
            raise BecomeError(
                self.host.name, "sudo password was rejected — check ansible_become_password"
            )
        if "a password is required" in said:
            raise BecomeError(self.host.name, _NEEDS_PASSWORD)

    def _command_error(self, what: str, rc: int, out: bytes, err: bytes) -> CommandError:
        detail = CommandResult("", rc, out.decode(ENCODING, ERRORS), err.decode(ENCODING, ERRORS))
        tail = detail.tail()
        reason = f": {tail}" if tail else ""
        return CommandError(self.host.name, f"{what} (exit {rc}){reason}")


def _drift_message(path: str, found: str) -> str:
    again = "nothing was written; run again to plan against the current file"
    if found == "exists":
        return f"{path} was created on the host after it was planned — {again}"
    if found == "absent":
        return f"{path} was removed from the host after it was read — {again}"
    return f"{path} changed on the host after it was read (sha256 now {found[:12]}…) — {again}"
