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


class Become(Enum):
    """How this connection becomes the become user (root unless `ansible_become_user`),
    found out on the host by the first become command (`become_script`); the values are
    that script's verdicts."""

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


def become_script(user: str | None, marker: str, *, with_password: bool) -> str:
    """The first become command of a connection, run as the login user: it finds out on the
    host how to become `user` (root when None) and runs the command that way, in ONE exec.

    Why on the host: a probe exec of its own cost every host 3 round trips more. The script
    prints `MARKER VERDICT` before anything of the command runs (so no output of the command
    can pose as it; `marker` is random and travels on stdin, never in an argv), behind only
    what the password check said, then:

    - `self`: already that user: the command runs as it is;
    - `nopasswd`: `sudo -n` works: the command runs under it;
    - `password`: the password is right: the command runs under `sudo -S`;
    - `nosudo`, `refused` (+ what sudo said): nothing of the command runs, as nobody.

    Its stdin: with a password, the password line twice, then the command (`script_on_stdin`)
    and the command's own input. The first line is checked by a `sudo -v` whose stdin holds
    that line and nothing else: after a wrong password sudo reads the next lines as two more
    attempts (three failed logins, ~5 s, perhaps a faillock lockout), so it must meet the
    end of its input instead. The check leaves sudo's credential cache for this shell, so
    the command runs under `sudo -n` (the password is checked once, not twice: PAM's hash,
    ~40 ms of host CPU, is most of what a sudo costs) and `sudo -k` invalidates the cache
    when the command ends. Where the cache does not hold (timestamp_timeout=0) the second
    line is for a `sudo -S` that runs the command, as in every later become exec; the
    branches that need no password read both lines away first.
    """
    as_user = _sudo_user(user)
    if user and user != "root":
        already = f'[ "$(id -un)" = {shlex.quote(user)} ]'
    else:
        already = '[ "$u" = 0 ]'
    skip = "read -r _; read -r _; " if with_password else ""
    plain = f"/bin/sh -c {shlex.quote(SCRIPT_READER)}"
    nopasswd = sudo_command(SCRIPT_READER, with_password=False, user=user)
    script = (
        f"m={shlex.quote(marker)}\n"
        "u=$(id -u) || exit 1\n"
        f'if {already}; then {skip}echo "$m self"; exec {plain}; fi\n'
        'command -v sudo >/dev/null 2>&1 || { echo "$m nosudo"; exit 0; }\n'
        f"if said=$(LC_ALL=C sudo -n {as_user}true 2>&1); then\n"
        f'  {skip}echo "$m nopasswd"; exec {nopasswd}\n'
        "fi\n"
    )
    if not with_password:
        return script + 'printf \'%s\\n\' "$m refused" "$said"\n'
    # Not `$(...)`: sudo keys its cache to its parent process, which must be this shell.
    check = "{ printf '%s\\n' \"$pw\" | LC_ALL=C sudo -S -p '' -v; } 2>&1"
    password = sudo_command(SCRIPT_READER, with_password=True, user=user)
    return script + (
        "IFS= read -r pw\n"
        f"if {check}; then\n"
        '  echo "$m password"\n'
        f"  if sudo -n {as_user}true 2>/dev/null; then read -r _; {nopasswd}; else {password}; fi\n"
        "  r=$?; sudo -k 2>/dev/null; exit $r\n"
        "fi\n"
        'printf \'%s\\n\' "$m refused" "$said"\n'
    )


_SUDO_UNKNOWN_USER = "unknown user"
_NEEDS_PASSWORD = "sudo needs a password — set ansible_become_password (or pass -K to be asked)"
_SUDO_DENIED = ("not in the sudoers", "not allowed to", "may not run sudo")
_SUDO_BAD_PASSWORD = ("incorrect password", "no password was provided", "Sorry, try again")
_REJECTED = "sudo password was rejected — check ansible_become_password"


class Connection(ABC):
    """One open session to one host, used by every step of a run (never re-opened per step).

    A context manager: `with connect(host, options) as conn: ...` closes it on every exit.
    Subclasses implement `_exec` (and `forward` when the host's loopback is not ours).
    """

    def __init__(self, host: Host, *, command_timeout: float | None = None) -> None:
        self.host = host
        self._command_timeout = command_timeout
        self._become: Become | None = None
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
        try:
            return self._run_become(command, stdin, timeout)
        except CommandTimeout as exc:  # name the command, not the sudo or script around it
            shown = f"`{short_command(command)}`"
            raise CommandTimeout(self.host.name, shown, exc.timeout, exc.detail) from None

    def _run_become(
        self, command: str, stdin: bytes, timeout: float | None
    ) -> tuple[int, bytes, bytes]:
        how = self._become
        if how is None:
            return self._become_first(command, stdin, timeout)
        return self._exec_become(how, command, stdin, timeout)

    def _exec_become(
        self, how: Become, command: str, stdin: bytes, timeout: float | None
    ) -> tuple[int, bytes, bytes]:
        """Run a become command once the way is known: its own exec, as `become_launch`
        wraps it. SSH overrides this to use its kept-open shell (`keptshell`) when it can."""
        wrapped, prefix = self.become_launch(how, command)
        result = self._exec(wrapped, prefix + stdin, timeout)
        return result if how is Become.SELF else self._sudo_ran(*result)

    def become_launch(self, how: Become, command: str) -> tuple[str, bytes]:
        """(the shell text to run as the login user, the stdin to send before the command's
        own) that runs `command` as the become user the way `how` says.

        Under sudo the command itself travels on stdin behind SCRIPT_READER (sudo's argv is
        on the host's `ps` too), after the password line when sudo needs one.
        """
        if how is Become.SELF:
            return command, b""
        with_password = how is Become.PASSWORD
        prefix = self._password_line() if with_password else b""
        reader, script = script_on_stdin(command)
        wrapped = sudo_command(reader, with_password=with_password, user=self.host.become_user)
        return wrapped, prefix + script

    def _password_line(self) -> bytes:
        password = self.host.become_password or ""
        return password.encode(ENCODING) + b"\n"

    def _become_first(
        self, command: str, stdin: bytes, timeout: float | None
    ) -> tuple[int, bytes, bytes]:
        """Run the first become command inside `become_script` (one exec, not a probe exec
        and then the command), and keep the way it found for every later become.

        No lock: a become that starts before the first has answered runs the script too
        (the same verdict, one exec either way), and the way is one attribute, set whole.
        """
        marker, probe, prefix = self.become_probe(command)
        rc, out, err = self._exec(probe, prefix + stdin, timeout)
        how, rest = self.take_verdict(marker, rc, out, err)
        return (rc, rest, err) if how is Become.SELF else self._sudo_ran(rc, rest, err)

    def become_probe(self, command: str) -> tuple[str, str, bytes]:
        """(its marker, `become_script` for this host, the stdin to send before the command's
        own): the first become command, as the login user runs it."""
        marker = "redmedic-become-" + secrets.token_hex(16)
        with_password = self.host.become_password is not None
        passwords = self._password_line() * 2 if with_password else b""
        _, script = script_on_stdin(command)
        probe = become_script(self.host.become_user, marker, with_password=with_password)
        return marker, probe, passwords + script

    def take_verdict(self, marker: str, rc: int, out: bytes, err: bytes) -> tuple[Become, bytes]:
        """Keep the way `become_script` found; (it, the command's stdout behind the verdict
        line). Raises what stopped it: a refusal, or a script that broke off before it knew."""
        checked, found, rest = out.partition(marker.encode(ENCODING) + b" ")
        if not found:  # the script broke off before it knew anything
            raise self._command_error("cannot find out the login user's id", rc, out, err)
        line, _, rest = rest.partition(b"\n")
        verdict = line.decode(ENCODING, ERRORS)
        how = next((way for way in Become if way.value == verdict), None)
        if how is None:
            raise self._refusal(verdict, (rest + checked).decode(ENCODING, ERRORS))
        self._become = how
        return how, rest

    def _refusal(self, verdict: str, said: str) -> BecomeError:
        """Why `become_script` ran nothing: no sudo, or sudo's own words (`said`)."""
        if verdict == "nosudo":
            target = self.host.become_user or "root"
            return BecomeError(
                self.host.name,
                f"become needs sudo, which is not installed — install sudo or log in as {target}",
            )
        wrong = _NEEDS_PASSWORD if self.host.become_password is None else _REJECTED
        return self._sudo_refused(said) or BecomeError(self.host.name, wrong)

    def _sudo_ran(self, rc: int, out: bytes, err: bytes) -> tuple[int, bytes, bytes]:
        """A command's result under sudo, unless sudo itself said why it ran nothing."""
        if rc == 1 and err.startswith(b"sudo: "):
            said = err.decode(ENCODING, ERRORS)
            error = self._sudo_refused(said)
            if error is None and any(phrase in said for phrase in _SUDO_BAD_PASSWORD):
                error = BecomeError(self.host.name, _REJECTED)
            if error is None and "a password is required" in said:
                error = BecomeError(self.host.name, _NEEDS_PASSWORD)
            if error is not None:
                raise error
        return rc, out, err

    def _sudo_refused(self, said: str) -> BecomeError | None:
        """sudo refusing these users whatever the password; the password is never quoted."""
        if _SUDO_UNKNOWN_USER in said:
            return BecomeError(
                self.host.name,
                f"the become user {self.host.become_user or 'root'} does not exist here — "
                "check ansible_become_user (or --become-user)",
            )
        if any(phrase in said for phrase in _SUDO_DENIED):
            return BecomeError(
                self.host.name,
                f"sudo refused: {self.host.user or 'the login user'} may not run commands as "
                f"{self.host.become_user or 'root'} here — add a sudoers rule or use another "
                "ansible_user",
            )
        return None

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
