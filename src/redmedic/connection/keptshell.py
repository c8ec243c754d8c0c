"""A shell kept open per host for become commands: one channel, one sudo, many commands.

Why: on a sudo-with-password host every become command used to be a channel of its own,
an exec and a `sudo -S -k` that checks the password again (PAM and yescrypt, ~43 ms of
host CPU), and 2-3 round trips. The first become command starts ONE channel running
`loop_program` inside `base.become_script` (which finds out how to become, and checks the
password once), itself its first request; every later become command is a request on that
channel's stdin and costs one round trip, no sudo, no exec. (Where the first become found
the shell busy or gone, a later one starts the loop under the way already known.)

The request is a header line `SCRIPT_BYTES STDIN_BYTES`, the script, then the command's
own input. The loop reads exactly those bytes (`head -c` never reads ahead), runs the
script as `( eval ... )` — a subshell, so `cd`, `export` or `exit 3` end with the command —
on /dev/null or on a pipe holding exactly its input (drained after it, so what it leaves
unread cannot pose as the next request), then ends stdout with `\\nNONCE RC\\n` and stderr
with `\\nNONCE\\n` as `scripts.batch_script` does. The nonce is random per shell and travels
on stdin inside the loop program (never an argv), and the command's subshell unsets it,
so no command's output can end a frame early. A host's `ps` shows the fixed SCRIPT_READER,
sudo, `head -c N` and `cat`, never a command.
"""

from __future__ import annotations

import re
import secrets
import select
import threading
import time
from collections.abc import Callable
from contextlib import suppress

import paramiko

from redmedic.connection.outputcap import OutputCap
from redmedic.connection.sshauth import SSH_ERRORS

_BUFFER = 65536
#: The loop's variables, unset in each command's subshell before its script runs.
_LOOP_VARS = "_rmk _rmn _rmm _rmc _rmr"


def new_nonce() -> str:
    """The frame mark of one kept shell."""
    return "redmedic-kept-" + secrets.token_hex(16)


def loop_program(nonce: str) -> str:
    """The POSIX sh loop that runs requests until its stdin ends (read behind SCRIPT_READER).

    The unset shares the script's first line, so error messages keep their line numbers.
    The stderr mark is printed first: it is read last (select wakes on stdout only).
    """
    return (
        f"_rmk={nonce}\n"
        "while IFS=' ' read -r _rmn _rmm; do\n"
        '  _rmc=$(head -c "$_rmn"; echo .)\n'
        f'  _rmc="unset {_LOOP_VARS}; ${{_rmc%.}}"\n'
        '  if [ "$_rmm" = 0 ]; then\n'
        '    ( eval "$_rmc" ) </dev/null\n'
        "  else\n"
        '    head -c "$_rmm" | { ( eval "$_rmc" ); _rmr=$?; cat >/dev/null; exit "$_rmr"; }\n'
        "  fi\n"
        "  _rmr=$?\n"
        "  printf '\\n%s\\n' \"$_rmk\" >&2\n"
        '  printf \'\\n%s %s\\n\' "$_rmk" "$_rmr"\n'
        "done\n"
    )


def request(script: bytes, stdin: bytes) -> bytes:
    """One command for the loop: the header line, the script, the command's input."""
    return b"%d %d\n" % (len(script), len(stdin)) + script + stdin


class Frames:
    """Finds the end of one request's output on both streams (the loop's marks)."""

    def __init__(self, nonce: str) -> None:
        mark = nonce.encode()
        self._out_end = re.compile(rb"\n" + re.escape(mark) + rb" (\d+)\n\Z")
        self._err_end = b"\n" + mark + b"\n"
        self._keep = len(mark) + 16
        self.out, self.err = OutputCap(), OutputCap()
        self._out_tail = self._err_tail = b""
        self.rc: int | None = None
        self._out_cut = 0
        self.err_done = False

    def add_out(self, data: bytes) -> None:
        self.out.add(data)
        self._out_tail = (self._out_tail + data)[-self._keep :]
        found = self._out_end.search(self._out_tail)
        if found:
            self.rc = int(found.group(1))
            self._out_cut = len(found.group(0))

    def add_err(self, data: bytes) -> None:
        self.err.add(data)
        self._err_tail = (self._err_tail + data)[-self._keep :]
        self.err_done = self._err_tail.endswith(self._err_end)

    @property
    def done(self) -> bool:
        return self.rc is not None and self.err_done

    def result(self) -> tuple[int, bytes, bytes]:
        """(rc, stdout, stderr) of the command, without the marks."""
        assert self.rc is not None
        out, err = self.out.value(), self.err.value()
        return self.rc, out[: -self._out_cut], err[: -len(self._err_end)]


class ShellEnded(Exception):
    """The kept shell's channel ended before the request's frame: what it said till then."""

    def __init__(self, rc: int, out: bytes, err: bytes) -> None:
        super().__init__("the kept-open shell ended")
        self.rc, self.out, self.err = rc, out, err


class KeptShell:
    """One long-lived channel running `loop_program` as the become user; one request at
    a time (the connection's lock sees to it)."""

    def __init__(self, channel: paramiko.Channel, nonce: str) -> None:
        self.channel = channel
        self.nonce = nonce

    def idle(self) -> bool:
        """True when the shell still runs and nothing came since its last frame.

        Output after a frame means something the last command left behind (a background
        process holding its stdout) would pose as the next command's: not worth the risk.
        """
        channel = self.channel
        return not (
            channel.closed
            or channel.eof_received
            or channel.exit_status_ready()
            or channel.recv_ready()
            or channel.recv_stderr_ready()
        )

    def close(self) -> None:
        with suppress(*SSH_ERRORS):
            self.channel.close()

    def run(
        self,
        data: bytes,
        *,
        wait: Callable[[], float],
        check_alive: Callable[[], None],
        inline_limit: int,
    ) -> tuple[int, bytes, bytes]:
        """Send `data` (ending with one `request`) and read both streams up to its frames.

        Raises ShellEnded when the channel ends first, and whatever `check_alive` raises
        (timeout, lost transport) while waiting.
        """
        channel = self.channel
        sender = None
        if len(data) > inline_limit:  # a command may write a lot before it reads its input
            sender = threading.Thread(target=_send, args=(channel, data), daemon=True)
            sender.start()
        else:
            _send(channel, data)
        frames = Frames(self.nonce)
        while not frames.done:
            if frames.rc is None:
                # recv_ready() too: paramiko's one wake-up pipe for both streams can be
                # cleared by a stderr read racing a stdout arrival (OrPipe is not locked),
                # and no EOF would ever wake a kept shell's select.
                ready, _, _ = select.select([channel], [], [], wait())
                if ready or channel.recv_ready():
                    chunk = channel.recv(_BUFFER)
                    if not chunk:
                        raise self._ended(frames, wait, check_alive)
                    frames.add_out(chunk)
            else:  # the stderr mark was printed first; it is on its way, if not here
                time.sleep(min(0.002, wait()))
            while channel.recv_stderr_ready():
                frames.add_err(channel.recv_stderr(_BUFFER))
            if not frames.done:
                if frames.rc is not None and channel.closed:
                    raise self._ended(frames, wait, check_alive)
                check_alive()
        if sender is not None:
            sender.join(timeout=5.0)  # the loop has read every byte: sendall is returning
        return frames.result()

    def _ended(
        self, frames: Frames, wait: Callable[[], float], check_alive: Callable[[], None]
    ) -> ShellEnded:
        channel = self.channel
        while not channel.exit_status_ready() and not channel.closed:
            channel.status_event.wait(wait())
            check_alive()
        while channel.recv_stderr_ready():
            frames.add_err(channel.recv_stderr(_BUFFER))
        return ShellEnded(channel.recv_exit_status(), frames.out.value(), frames.err.value())


def _send(channel: paramiko.Channel, data: bytes) -> None:
    """Send all of `data`; the channel stays open for the next request."""
    with suppress(*SSH_ERRORS):
        channel.sendall(data)
