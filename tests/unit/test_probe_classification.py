"""classify_redis_error and ProbeResult, fed with the exceptions redis-py really builds.

Server errors go through redis-py's own reply parser (``DefaultParser.parse_error``),
connect failures through its own message formatter, so these tests see the same class,
message and ``status_code`` split a live connection produces. This is where causes that
need a network we do not have on loopback are pinned down (firewalld's "No route to
host", the protected-mode close race), with the texts measured on real test hosts
(tests/support/README.md, "Tier 2").
"""

from __future__ import annotations

import socket
import ssl

import pytest
from redis.connection import DefaultParser
from redis.exceptions import (
    AuthenticationError,
    BusyLoadingError,
    InvalidResponse,
    MaxConnectionsError,
    OutOfMemoryError,
    RedisError,
    ResponseError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.utils import format_error_message

from redmedic.redis.probes.outcome import ProbeOutcome, ProbeResult, one_line, redact
from redmedic.redis.probes.redis import (
    classify_redis_error,
    probe_commands,
    redis_probe,
    server_text,
)
from redmedic.redis.probes.tcp import tcp_probe

# Redis 7.0.15's reply to a non-loopback client, verbatim (captured from a live server).
DENIED = (
    "DENIED Redis is running in protected mode because protected mode is enabled and no "
    "password is set for the default user. In this mode connections are only accepted from "
    "the loopback interface. If you want to connect from external computers to Redis you may "
    "adopt one of the following solutions: 1) Just disable protected mode sending the command "
    "'CONFIG SET protected-mode no' from the loopback interface by connecting to Redis from "
    "the same host the server is running, however MAKE SURE Redis is not publicly accessible "
    "from internet if you do so. Use CONFIG REWRITE to make this change permanent. 2) "
    "Alternatively you can just disable the protected mode by editing the Redis configuration "
    "file, and setting the protected mode option to 'no', and then restarting the server. 3) "
    "If you started the server manually just for testing, restart it with the "
    "'--protected-mode no' option. 4) Setup a an authentication password for the default "
    "user. NOTE: You only need to do one of the above things in order for the server to start "
    "accepting connections from the outside."
)


def server_reply(text: str) -> RedisError:
    """The exception redis-py raises for the error reply ``-<text>``."""
    exc = DefaultParser.parse_error(text)  # type: ignore[no-untyped-call]
    assert isinstance(exc, RedisError)
    return exc


def connect_failure(error: OSError) -> RedisConnectionError:
    """The exception redis-py raises when the socket connect itself fails."""
    exc = RedisConnectionError(format_error_message("redis.example:6379", error))
    exc.__context__ = error
    return exc


@pytest.mark.parametrize(
    ("reply", "expected_class", "outcome"),
    [
        (DENIED, ResponseError, ProbeOutcome.PROTECTED_MODE),
        ("ERR max number of clients reached", RedisConnectionError, ProbeOutcome.MAX_CLIENTS),
        ("NOAUTH Authentication required.", AuthenticationError, ProbeOutcome.AUTH_REQUIRED),
        (
            "WRONGPASS invalid username-password pair or user is disabled.",
            AuthenticationError,
            ProbeOutcome.AUTH_FAILED,
        ),
        ("ERR invalid password", AuthenticationError, ProbeOutcome.AUTH_FAILED),
        (
            "OOM command not allowed when used memory > 'maxmemory'.",
            OutOfMemoryError,
            ProbeOutcome.OOM,
        ),
        ("LOADING Redis is loading the dataset in memory", BusyLoadingError, ProbeOutcome.LOADING),
    ],
)
def test_each_server_error_reply_names_its_cause(
    reply: str, expected_class: type[RedisError], outcome: ProbeOutcome
) -> None:
    exc = server_reply(reply)

    result_outcome, detail = classify_redis_error(exc)

    assert isinstance(exc, expected_class)  # redis-py 8.2 added MaxClientsReachedError under it
    assert result_outcome is outcome
    assert reply in detail, "the server's own words are the evidence"


def test_denied_is_a_plain_response_error_but_still_protected_mode() -> None:
    exc = server_reply(DENIED)

    outcome, detail = classify_redis_error(exc)

    assert type(exc) is ResponseError, "redis-py has no class of its own for DENIED"
    assert outcome is ProbeOutcome.PROTECTED_MODE
    assert detail.startswith("DENIED Redis is running in protected mode")


def test_a_silent_close_is_protected_mode_but_says_it_is_an_inference() -> None:
    outcome, detail = classify_redis_error(RedisConnectionError("Connection closed by server."))

    assert outcome is ProbeOutcome.PROTECTED_MODE
    assert "likely protected mode" in detail
    assert "tunnel" in detail and "TLS" in detail, "the look-alikes are named"


def test_redis_py_drops_the_error_code_and_the_detail_puts_it_back() -> None:
    exc = server_reply("NOAUTH Authentication required.")

    assert str(exc) == "Authentication required."
    assert server_text(exc) == "NOAUTH Authentication required."


def test_auth_sent_to_a_server_without_a_password_is_ok_with_a_note() -> None:
    reply = (
        "ERR AUTH <password> called without any password configured for the default user. "
        "Are you sure your configuration is correct?"
    )
    exc = server_reply(reply)

    outcome, detail = classify_redis_error(exc)

    assert isinstance(exc, AuthenticationError)
    assert outcome is ProbeOutcome.OK
    assert "no password configured" in detail


def test_the_probe_pipeline_puts_auth_first_and_the_write_last() -> None:
    """All of it leaves in one write; the replies come back in this order."""
    assert probe_commands(None, None, None) == [("PING",)]
    assert probe_commands("pw", None, None) == [("AUTH", "pw"), ("PING",)]
    assert probe_commands("pw", "prober", "k") == [
        ("AUTH", "prober", "pw"),
        ("PING",),
        ("SET", "k", "1", "PX", 10_000),
        ("DEL", "k"),
    ]
    assert probe_commands(None, "prober", "k")[0] == ("PING",), "no AUTH without a password"


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (ConnectionRefusedError(111, "Connection refused"), ProbeOutcome.REFUSED),
        (OSError(113, "No route to host"), ProbeOutcome.NO_ROUTE),
        (OSError(101, "Network is unreachable"), ProbeOutcome.NO_ROUTE),
        (OSError(110, "Connection timed out"), ProbeOutcome.TIMEOUT),
        (socket.gaierror(-2, "Name or service not known"), ProbeOutcome.ERROR),
        (OSError(13, "Permission denied"), ProbeOutcome.ERROR),
    ],
)
def test_connect_failures_are_named_by_errno(error: OSError, outcome: ProbeOutcome) -> None:
    exc = connect_failure(error)

    result_outcome, detail = classify_redis_error(exc)

    assert result_outcome is outcome
    assert str(error.args[1]) in detail


def test_firewalld_reject_message_from_the_facts_file_is_no_route() -> None:
    exc = RedisConnectionError("Error 113 connecting to 10.0.0.5:6379. No route to host.")

    assert classify_redis_error(exc)[0] is ProbeOutcome.NO_ROUTE


def test_an_unresolvable_name_says_so() -> None:
    exc = connect_failure(socket.gaierror(-2, "Name or service not known"))

    assert classify_redis_error(exc)[1].startswith("cannot resolve the host name")


@pytest.mark.parametrize(
    "exc",
    [
        RedisTimeoutError("Timeout connecting to server"),
        RedisTimeoutError("Timeout reading from redis.example:6379"),
        TimeoutError("timed out"),
    ],
)
def test_timeouts_of_either_kind_are_timeouts(exc: BaseException) -> None:
    assert classify_redis_error(exc)[0] is ProbeOutcome.TIMEOUT


def test_a_timeout_says_which_layer_timed_out() -> None:
    connect = classify_redis_error(RedisTimeoutError("Timeout connecting to server"))[1]
    read = classify_redis_error(RedisTimeoutError("Timeout reading from h:6379"))[1]
    handshake = RedisTimeoutError("Timeout connecting to server")
    handshake.__context__ = TimeoutError("_ssl.c:989: The handshake operation timed out")

    assert "SYN dropped" in connect
    assert "did not reply in time" in read
    assert "TLS handshake" in classify_redis_error(handshake)[1]


def test_the_client_side_pool_limit_is_not_the_server_maxclients() -> None:
    outcome, detail = classify_redis_error(MaxConnectionsError("Too many connections"))

    assert outcome is ProbeOutcome.ERROR
    assert "client-side" in detail


def test_tls_evidence_is_tls() -> None:
    ssl_failure = ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)")
    tls_alert = InvalidResponse("Protocol Error: b'\\x15\\x03\\x01\\x00\\x02\\x02'")

    assert classify_redis_error(connect_failure(ssl_failure))[0] is ProbeOutcome.TLS
    assert classify_redis_error(tls_alert)[0] is ProbeOutcome.TLS


def test_a_reset_or_garbage_alone_is_not_enough_to_name_a_cause() -> None:
    reset = RedisConnectionError(
        "Error while reading from h:6379 : (104, 'Connection reset by peer')"
    )
    garbage = InvalidResponse("Protocol Error: b'HTTP/1.1 400 Bad Request'")

    assert classify_redis_error(reset)[0] is ProbeOutcome.ERROR
    assert classify_redis_error(garbage)[0] is ProbeOutcome.ERROR


def test_anything_unknown_is_error_with_its_message() -> None:
    exc = server_reply("MISCONF Redis is configured to save RDB snapshots, but it's failing")

    outcome, detail = classify_redis_error(exc)

    assert outcome is ProbeOutcome.ERROR
    assert "MISCONF Redis is configured to save RDB snapshots" in detail


def test_outcome_values_are_the_report_words() -> None:
    assert [o.value for o in ProbeOutcome] == [
        "ok", "refused", "timeout", "no-route", "protected-mode", "auth-required",
        "auth-failed", "max-clients", "oom", "loading", "tls", "error",
    ]  # fmt: skip
    assert f"{ProbeOutcome.NO_ROUTE}" == "no-route", "a StrEnum formats as its value"


def test_a_result_is_ok_only_for_ok_and_its_detail_is_one_line() -> None:
    assert ProbeResult(ProbeOutcome.OK, "PONG", "h", 6379, 1.0).ok
    assert not ProbeResult(ProbeOutcome.OOM, "OOM", "h", 6379, 1.0).ok
    with pytest.raises(ValueError, match="single line"):
        ProbeResult(ProbeOutcome.ERROR, "two\nlines", "h", 6379, 1.0)
    assert one_line("a\n  b\r\nc") == "a b c"


def test_redact_removes_every_copy_of_the_secret() -> None:
    assert redact("AUTH hunter2 hunter2", "hunter2") == "AUTH *** ***"
    assert redact("nothing to hide", None) == "nothing to hide"
    assert redact("empty secret", "") == "empty secret"


def test_an_impossible_host_name_is_an_error_result_not_an_exception() -> None:
    # Rejected by the IDNA codec before any lookup: no packet is sent.
    for result in (tcp_probe("a..b", 6379), redis_probe("a..b", 6379)):
        assert result.outcome is ProbeOutcome.ERROR, result
        assert "invalid host name" in result.detail


def test_an_impossible_port_is_a_caller_bug() -> None:
    with pytest.raises(ValueError, match="port"):
        tcp_probe("localhost", 0)
    with pytest.raises(ValueError, match="port"):
        redis_probe("localhost", 70000)
