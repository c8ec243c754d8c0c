"""What a Redis client sees: PING (and optionally a write) through redis-py, classified.

The probe speaks to the server exactly once, on one connection, with redis-py's
retries disabled, so a verdict costs at most a few ``timeout`` periods and every
failure is the server's first answer rather than a retry's. Choices that matter:

* One round trip: AUTH, PING (and SET, DEL) leave in one write and their replies are
  read in order (a pipeline), because at 50 ms RTT every reply waited for costs 50 ms,
  on the way from this machine as through the host's SSH tunnel. The first error reply
  is the verdict, with one exception: AUTH refused because the server has no password.
  Redis answers every command it was sent, so the PING, SET and DEL behind that AUTH
  are the answers a client without a password gets: no second connection asks again.
* A bare :class:`redis.connection.Connection`, not a ``Redis`` client. The client's
  pool checks a fresh socket for unread data and, finding the error a server sends
  on accept (``-DENIED``, ``-ERR max number of clients reached``), throws the text
  away and reports "Connection not ready". Reading the reply to our own PING keeps it.
* RESP2 (``protocol=2``). redis-py 8 defaults to RESP3, whose ``HELLO 3 AUTH default
  <password>`` succeeds silently on a server without a password and turns NOAUTH into
  a long "HELLO must be called..." text; plain ``AUTH`` reports both as the classic
  messages (and works on servers older than 6.0, which lack HELLO).
* The connection itself sends nothing: no ``CLIENT SETINFO`` (``driver_info=None``),
  and no credentials, because redis-py's ``connect()`` would send AUTH and wait for
  its reply; the probe sends AUTH itself, at the head of the pipeline.
* TLS certificates are not verified: the question is "does this port talk TLS and
  Redis", not "is the certificate trusted", which is a separate check.

Failures are mapped by :func:`classify_redis_error`, a pure function so the mapping
is tested against real exception objects. Where one symptom has several causes (a
silent close, a reset, a stalled TLS handshake), the probe gathers one more piece of
evidence — does the port speak TLS? does it answer plaintext? — before naming one.
"""

from __future__ import annotations

import re
import secrets
import socket
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Protocol, cast

from redis._parsers import _RESP2Parser
from redis.backoff import NoBackoff
from redis.connection import Connection, SSLConnection
from redis.exceptions import (
    AuthenticationWrongNumberOfArgsError,
    BusyLoadingError,
    InvalidResponse,
    MaxConnectionsError,
    OutOfMemoryError,
    RedisError,
)
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from redmedic.redis.probes.outcome import ProbeOutcome, ProbeResult, one_line, redact
from redmedic.redis.probes.tcp import check_port, elapsed_ms, outcome_for_errno

PROBE_KEY_PREFIX = "redmedic:probe:"
"""Keys written by ``write=True`` probes; each expires on its own after 10 s."""

_PROBE_KEY_TTL_MS = 10_000

# Error codes (the first word of the server's reply) whose cause is unambiguous.
_CODE_RULES: dict[str, ProbeOutcome] = {
    "DENIED": ProbeOutcome.PROTECTED_MODE,
    "NOAUTH": ProbeOutcome.AUTH_REQUIRED,
    "WRONGPASS": ProbeOutcome.AUTH_FAILED,
    "OOM": ProbeOutcome.OOM,
    "LOADING": ProbeOutcome.LOADING,
}
# Phrases that arrive under the generic ERR code (or none). Matched as fragments
# because the tails of these messages changed across Redis versions.
_PHRASE_RULES: tuple[tuple[str, ProbeOutcome], ...] = (
    ("max number of clients reached", ProbeOutcome.MAX_CLIENTS),
    ("invalid password", ProbeOutcome.AUTH_FAILED),  # Redis < 6.0
    ("Invalid Username or Password", ProbeOutcome.AUTH_FAILED),  # redis-py, AUTH not OK
    ("HELLO must be called with the client already authenticated", ProbeOutcome.AUTH_REQUIRED),
)

_NO_PASSWORD_CONFIGURED = (
    "called without any password configured",  # Redis >= 6.0
    "Client sent AUTH, but no password is set",  # Redis < 6.0
)
_NO_PASSWORD_NOTE = "the server has no password configured (AUTH not needed)"

_CONNECT_ERRNO = re.compile(r"^Error (-?\d+) connecting to ")
_SERVER_CLOSED = "Connection closed by server."
_TLS_RECORD_STARTS = ("b'\\x15\\x03", "b'\\x16\\x03")  # TLS alert / handshake records


def redis_probe(
    host: str,
    port: int,
    *,
    password: str | None = None,
    username: str | None = None,
    timeout: float = 2.0,
    write: bool = False,
    tls: bool = False,
) -> ProbeResult:
    """PING ``host:port`` like a client would and name the cause of any failure.

    With ``write=True`` it also SETs and DELetes a probe key, because a full server
    under ``noeviction`` still answers PING and only refuses writes. ``username`` is
    only sent together with a ``password``. The password never appears in the result.
    """
    check_port(port)
    started = time.monotonic()
    secret = password or None
    target = _Target(host, port, secret, username if secret else None, timeout, tls)
    outcome, detail = _probe(target, write)
    return ProbeResult(outcome, one_line(redact(detail, password)), host, port, elapsed_ms(started))


def classify_redis_error(exc: BaseException) -> tuple[ProbeOutcome, str]:
    """Map one exception raised by redis-py (or the socket under it) to its cause.

    Returns the outcome and a one-line detail built from the exception's own text.
    ``OK`` is returned for "AUTH ... without any password configured": the server
    works, the client merely sent a password it does not need.
    """
    text = server_text(exc)
    if isinstance(exc, MaxConnectionsError):
        return ProbeOutcome.ERROR, f"client-side pool exhausted (not server maxclients): {text}"
    if isinstance(exc, RedisTimeoutError | TimeoutError):
        return ProbeOutcome.TIMEOUT, _timeout_detail(exc, text)
    if isinstance(exc, OutOfMemoryError):
        return ProbeOutcome.OOM, f"writes refused: {text}"
    if isinstance(exc, BusyLoadingError):
        return ProbeOutcome.LOADING, text
    if isinstance(exc, UnicodeError):  # the IDNA codec rejects the name before any lookup
        return ProbeOutcome.ERROR, f"invalid host name: {text}"
    return _classify_by_text(exc, text)


def server_text(exc: BaseException) -> str:
    """The error as the server (or socket) said it, error code included.

    redis-py strips the code: the reply ``-NOAUTH Authentication required.`` becomes
    ``AuthenticationError("Authentication required.", status_code="NOAUTH")``. The code
    is the stable part, so it is put back in front.
    """
    message = str(exc) or type(exc).__name__
    code = getattr(exc, "status_code", None)
    if isinstance(code, str) and code and not message.startswith(code):
        return f"{code} {message}"
    return message


def _classify_by_text(exc: BaseException, text: str) -> tuple[ProbeOutcome, str]:
    if _says_no_password_configured(text):
        return ProbeOutcome.OK, f"{_NO_PASSWORD_NOTE}: {text}"
    known = _CODE_RULES.get(text.split(" ", 1)[0]) or _phrase_outcome(text)
    if known is not None:
        return known, text
    if _is_tls_evidence(exc, text):
        return ProbeOutcome.TLS, f"TLS failure: {text}"
    connect_errno = _connect_errno(exc, text)
    if connect_errno is not None:
        return _classify_connect_errno(connect_errno, text)
    if text == _SERVER_CLOSED:
        return ProbeOutcome.PROTECTED_MODE, (
            "server closed the connection without a reply: likely protected mode (its "
            "close can beat the DENIED text); an SSH tunnel or proxy whose target refused, "
            "or a TLS-only port, looks the same"
        )
    if _is_reset(exc, text):
        return ProbeOutcome.ERROR, f"server reset the connection after accepting it: {text}"
    if isinstance(exc, InvalidResponse):
        return ProbeOutcome.ERROR, f"reply is not Redis protocol: {text}"
    return ProbeOutcome.ERROR, f"{type(exc).__name__}: {text}"


def _phrase_outcome(text: str) -> ProbeOutcome | None:
    for phrase, outcome in _PHRASE_RULES:
        if phrase in text:
            return outcome
    return None


def _says_no_password_configured(text: str) -> bool:
    return any(marker in text for marker in _NO_PASSWORD_CONFIGURED)


def _classify_connect_errno(number: int, text: str) -> tuple[ProbeOutcome, str]:
    if number < 0:  # getaddrinfo's EAI_* codes are negative
        return ProbeOutcome.ERROR, f"cannot resolve the host name: {text}"
    return outcome_for_errno(number), text


def _connect_errno(exc: BaseException, text: str) -> int | None:
    """The errno of a failed connect, from redis-py's message or the chained OSError."""
    match = _CONNECT_ERRNO.match(text)
    if match:
        return int(match.group(1))
    if isinstance(exc, OSError) and not isinstance(exc, ssl.SSLError):
        return exc.errno
    return None


def _is_tls_evidence(exc: BaseException, text: str) -> bool:
    """True when the failure itself proves a TLS mismatch or TLS failure."""
    if isinstance(exc, ssl.SSLError) or isinstance(exc.__context__, ssl.SSLError):
        return True
    if "[SSL" in text:
        return True
    return isinstance(exc, InvalidResponse) and text.removeprefix("Protocol Error: ").startswith(
        _TLS_RECORD_STARTS
    )


def _is_reset(exc: BaseException, text: str) -> bool:
    return isinstance(exc, ConnectionResetError) or "Connection reset by peer" in text


def _timeout_detail(exc: BaseException, text: str) -> str:
    """Say which layer timed out: the TCP connect, the TLS handshake, or the reply."""
    if _is_tls_handshake_timeout(exc):
        return f"TCP connected but the TLS handshake got no answer: {text}"
    if text.startswith("Timeout connecting"):
        return (
            f"no answer to TCP connect (SYN dropped: firewall DROP, host down, or a full "
            f"accept queue): {text}"
        )
    if text.startswith(("Timeout reading", "Timeout writing")):
        return f"connected, but the server did not reply in time (busy, blocked or stopped): {text}"
    return text


def _is_tls_handshake_timeout(exc: BaseException) -> bool:
    """redis-py says only "Timeout connecting"; the chained ssl timeout names the handshake."""
    return isinstance(exc, RedisTimeoutError | TimeoutError) and "handshake" in str(
        exc.__context__ or ""
    )


Command = tuple[str | int, ...]
"""One Redis command: its name, then its arguments."""

# What the probe catches: redis-py's errors, the socket's, and the IDNA codec's.
_FAILURES = (RedisError, OSError, UnicodeError)


class _Wire(Protocol):
    """The calls the probe makes on a redis-py connection, typed.

    redis-py leaves these methods unannotated; naming them here keeps the rest of
    the module checked by mypy --strict.
    """

    def connect(self) -> None: ...
    def pack_commands(self, commands: Sequence[Command]) -> list[bytes]: ...
    def send_packed_command(self, command: list[bytes], check_health: bool = ...) -> None: ...
    def read_response(self) -> object: ...
    def disconnect(self) -> None: ...


@dataclass(frozen=True, slots=True)
class _Target:
    """Where and how to connect; one value for what every attempt needs."""

    host: str
    port: int
    password: str | None
    username: str | None
    timeout: float
    tls: bool


@dataclass(frozen=True, slots=True)
class _Answer:
    """What one exchange got: its first failure (None: every reply was fine), and
    whether AUTH was refused only because the server has no password configured."""

    failure: BaseException | None
    auth_not_needed: bool = False


def _probe(target: _Target, write: bool) -> tuple[ProbeOutcome, str]:
    answer = _exchange(target, write)
    if target.username and isinstance(answer.failure, AuthenticationWrongNumberOfArgsError):
        # Redis < 6.0 knows no user names: AUTH with the password alone, as redis-py does.
        return _probe(replace(target, username=None), write)
    outcome, detail = _verdict(target, write, answer.failure)
    if answer.auth_not_needed:
        return outcome, f"{detail}; {_NO_PASSWORD_NOTE}"
    return outcome, detail


def _verdict(
    target: _Target, write: bool, failure: BaseException | None
) -> tuple[ProbeOutcome, str]:
    if failure is None:
        return ProbeOutcome.OK, "PONG; probe key written and deleted" if write else "PONG"
    outcome, detail = classify_redis_error(failure)
    if not target.tls and _wrong_protocol_suspected(failure, outcome):
        return _refine_plaintext_failure(target, outcome, detail)
    if target.tls and _is_tls_handshake_timeout(failure):
        return _refine_tls_handshake_timeout(target, outcome, detail)
    return outcome, detail


def _wrong_protocol_suspected(failure: BaseException, outcome: ProbeOutcome) -> bool:
    """A silent close, a reset or garbage right after connect: maybe a TLS-only port."""
    if outcome is ProbeOutcome.TLS:
        return False
    if isinstance(failure, InvalidResponse):
        return True
    text = server_text(failure)
    return text == _SERVER_CLOSED or _is_reset(failure, text)


def _refine_plaintext_failure(
    target: _Target, outcome: ProbeOutcome, detail: str
) -> tuple[ProbeOutcome, str]:
    if _speaks_tls(target.host, target.port, target.timeout):
        return ProbeOutcome.TLS, (
            f"port {target.port} completes a TLS handshake: it is a TLS port spoken to in "
            f"plaintext (probe with tls=True); plaintext attempt: {detail}"
        )
    return outcome, detail


def _refine_tls_handshake_timeout(
    target: _Target, outcome: ProbeOutcome, detail: str
) -> tuple[ProbeOutcome, str]:
    if _answers_plaintext(target.host, target.port, target.timeout):
        return ProbeOutcome.TLS, (
            f"port {target.port} answers plaintext Redis, not TLS: TLS is not enabled on "
            f"it (probe with tls=False); TLS attempt: {detail}"
        )
    return outcome, detail


def probe_commands(
    password: str | None, username: str | None, write_key: str | None
) -> list[Command]:
    """The probe's pipeline, in order: AUTH (with a password; the user name only with
    one), PING, and with ``write_key`` a SET that expires on its own, then its DEL."""
    commands: list[Command] = []
    if password:
        commands.append(("AUTH", username, password) if username else ("AUTH", password))
    commands.append(("PING",))
    if write_key:
        commands += [("SET", write_key, "1", "PX", _PROBE_KEY_TTL_MS), ("DEL", write_key)]
    return commands


def _exchange(target: _Target, write: bool) -> _Answer:
    """Connect, send every command in one write, read the replies: one round trip.

    Returns the first failure instead of raising it.
    """
    key = PROBE_KEY_PREFIX + secrets.token_hex(8) if write else None
    commands = probe_commands(target.password, target.username, key)
    conn = _connection(target)
    try:
        conn.connect()
        conn.send_packed_command(conn.pack_commands(commands), check_health=False)
        return _read_replies(conn, commands)
    except _FAILURES as exc:
        return _Answer(exc)
    finally:
        conn.disconnect()


def _read_replies(conn: _Wire, commands: Sequence[Command]) -> _Answer:
    """One reply per command, in order, up to the first failure."""
    auth_not_needed = False
    for command in commands:
        try:
            conn.read_response()
        except _FAILURES as exc:
            if command[0] == "AUTH" and _says_no_password_configured(server_text(exc)):
                auth_not_needed = True
                continue
            return _Answer(exc, auth_not_needed)
    return _Answer(None, auth_not_needed)


_ERR_CLASSES = cast("dict[str, type[RedisError]]", _RESP2Parser.EXCEPTION_CLASSES["ERR"])
_EXCEPTION_CLASSES = {
    **_RESP2Parser.EXCEPTION_CLASSES,
    "ERR": {
        text: error
        for text, error in _ERR_CLASSES.items()
        if not _says_no_password_configured(text)
    },
}


class _PipelineParser(_RESP2Parser):
    """redis-py's RESP2 parser, except that "AUTH ... without any password configured"
    is an error reply like any other: returned by the parser, then raised by
    ``read_response`` once its line is consumed.

    redis-py maps that reply to AuthenticationError, a ConnectionError, which its parser
    raises at once and rewinds its buffer for: every later read would get the same
    reply again, and the PING, SET and DEL behind the AUTH could never be read.
    """

    EXCEPTION_CLASSES = _EXCEPTION_CLASSES


def _connection(target: _Target) -> _Wire:
    """One redis-py connection that sends nothing on connect: no credentials (AUTH is
    the pipeline's first command), no retries, RESP2, no CLIENT SETINFO, bounded waits."""
    if target.tls:
        return SSLConnection(
            host=target.host,
            port=target.port,
            socket_timeout=target.timeout,
            socket_connect_timeout=target.timeout,
            retry=Retry(NoBackoff(), 0),
            protocol=2,
            parser_class=_PipelineParser,
            driver_info=None,
            ssl_cert_reqs="none",
            ssl_check_hostname=False,
        )
    return Connection(  # type: ignore[no-untyped-call]  # redis-py: untyped __init__
        host=target.host,
        port=target.port,
        socket_timeout=target.timeout,
        socket_connect_timeout=target.timeout,
        retry=Retry(NoBackoff(), 0),
        protocol=2,
        parser_class=_PipelineParser,
        driver_info=None,
    )


def _speaks_tls(host: str, port: int, timeout: float) -> bool:
    """Does ``host:port`` complete a TLS handshake? (Trust is not checked.)"""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with (
            socket.create_connection((host, port), timeout=timeout) as raw,
            context.wrap_socket(raw, server_hostname=host),
        ):
            return True
    except (OSError, ValueError):
        return False


def _answers_plaintext(host: str, port: int, timeout: float) -> bool:
    """Does ``host:port`` answer an inline ``PING`` with a RESP status or error line?"""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(b"PING\r\n")
            first = sock.recv(1)
    except OSError:
        return False
    return first in (b"+", b"-")
