"""Start a command on a paramiko session channel, and wait for the answer on our terms.

Why not `Channel.exec_command`: it sends the `exec` request with want_reply and then waits
for the answer on an Event with no timeout. A host that froze (or a server that never
answers) between the channel open and that answer would hold the run past
--command-timeout and ServerAliveInterval; with `exec_request` + `exec_answer` the caller
waits in slices and checks its deadline, the transport and the keepalives in between. And
`exec_command` raises the same "Channel closed." for a refused command and a lost
connection, where the caller wants to say which.

Not sending the stdin before the answer saves no round trip against OpenSSH's sshd: it
opens a session channel with a window of 0 and grants its window (2 MB) only when the
command starts, in the same flight as the answer, so the stdin, where redmedic's command
travels (`base.script_on_stdin`), cannot leave earlier anyway: channel open + command start
+ output = 3 round trips either way (bench/handshake.py measures both).

This uses paramiko's private pieces exactly as `exec_command` does (paramiko 3.x-5.x,
channel.py): the request message, `_event_pending` (clear `event` and `event_ready`) and
`Transport._send_user_message`. The answer lands where `exec_command` reads it: a success
sets `event_ready` and `event`; a failure makes paramiko close the channel
(`_request_failed`), which sets `event` alone, as does a channel or transport that closed
before any answer.
"""

from __future__ import annotations

import paramiko
from paramiko.common import cMSG_CHANNEL_REQUEST


def exec_request(channel: paramiko.Channel, command: str) -> None:
    """Ask the server to run `command` on `channel`; return without waiting for the answer.

    Raises paramiko.SSHException if the channel is not open, as `exec_command` does.
    """
    if channel.closed or channel.eof_received or channel.eof_sent or not channel.active:
        raise paramiko.SSHException("Channel is not open")
    assert channel.transport is not None  # an active channel belongs to a transport
    request = paramiko.Message()
    request.add_byte(cMSG_CHANNEL_REQUEST)
    request.add_int(channel.remote_chanid)
    request.add_string("exec")
    request.add_boolean(True)
    request.add_string(command)
    channel.event.clear()  # Channel._event_pending
    channel.event_ready = False
    channel.transport._send_user_message(request)  # type: ignore[attr-defined]


def exec_answer(channel: paramiko.Channel, wait: float) -> bool | None:
    """The server's answer to `exec_request`, waiting up to `wait` seconds for it.

    True: the command started. False: refused, or the channel (or its transport) closed
    before answering. None: no answer yet.
    """
    if not channel.event.wait(wait):
        return None
    return channel.event_ready
