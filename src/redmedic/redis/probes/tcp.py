"""Plain TCP reachability: can a SYN from here complete a handshake with host:port?

This is the layer below Redis. It separates "nothing listens / a firewall rejects"
(refused, no-route) from "packets vanish" (timeout) from "the name does not resolve"
(error) before any Redis protocol is involved, which is what tells a diagnose step
whether to look at the service, the bind address or the firewall.
"""

from __future__ import annotations

import errno
import socket
import time

from redmedic.redis.probes.outcome import ProbeOutcome, ProbeResult, one_line

# Connect-time errno values whose cause we can name. Anything else stays ERROR with
# the kernel's own words.
_ERRNO_OUTCOMES: dict[int, ProbeOutcome] = {
    errno.ECONNREFUSED: ProbeOutcome.REFUSED,
    errno.EHOSTUNREACH: ProbeOutcome.NO_ROUTE,
    errno.ENETUNREACH: ProbeOutcome.NO_ROUTE,
    errno.ETIMEDOUT: ProbeOutcome.TIMEOUT,
}


def tcp_probe(host: str, port: int, timeout: float = 2.0) -> ProbeResult:
    """Try one TCP connect to ``host:port`` and name why it failed, if it did.

    ``timeout`` bounds the whole attempt across every resolved address (DNS lookup
    itself excepted: the resolver has its own limits). Nothing is sent after connect.
    """
    check_port(port)
    started = time.monotonic()
    outcome, detail = _connect_outcome(host, port, timeout)
    return ProbeResult(outcome, one_line(detail), host, port, elapsed_ms(started))


def check_port(port: int) -> None:
    """Refuse impossible ports up front: that is a caller bug, not a network finding."""
    if not 0 < port < 65536:
        raise ValueError(f"port must be between 1 and 65535, got {port}")


def elapsed_ms(started: float) -> float:
    """Milliseconds since ``started`` (a ``time.monotonic()`` reading)."""
    return (time.monotonic() - started) * 1000.0


def outcome_for_errno(number: int | None) -> ProbeOutcome:
    """Map a connect() errno to its cause; unknown numbers are ERROR."""
    if number is None:
        return ProbeOutcome.ERROR
    return _ERRNO_OUTCOMES.get(number, ProbeOutcome.ERROR)


def _connect_outcome(host: str, port: int, timeout: float) -> tuple[ProbeOutcome, str]:
    try:
        peer = _connect_any(host, port, timeout)
    except socket.gaierror as exc:
        return ProbeOutcome.ERROR, f"cannot resolve {host!r}: {exc.strerror}"
    except UnicodeError as exc:  # the IDNA codec rejects the name before any lookup
        return ProbeOutcome.ERROR, f"invalid host name {host!r}: {exc}"
    except TimeoutError:
        return ProbeOutcome.TIMEOUT, (
            f"no answer to TCP connect within {timeout:g}s (SYN dropped: firewall DROP, "
            "host down, or a full accept queue)"
        )
    except OSError as exc:
        return outcome_for_errno(exc.errno), f"TCP connect to {host}:{port}: {exc.strerror or exc}"
    return ProbeOutcome.OK, f"TCP connect to {peer} succeeded"


def _connect_any(host: str, port: int, timeout: float) -> str:
    """Connect to the first address that accepts, within one overall deadline.

    ``socket.create_connection`` would give each address the full timeout; with a
    name resolving to IPv6 and IPv4 that doubles the wait, so the deadline is shared.
    Returns the peer as ``ip:port``; raises the last address's error otherwise.
    """
    deadline = time.monotonic() + timeout
    last_error: OSError = TimeoutError("timed out")
    for family, kind, proto, _, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        with socket.socket(family, kind, proto) as sock:
            sock.settimeout(remaining)
            try:
                sock.connect(sockaddr)
            except OSError as exc:
                last_error = exc
                continue
            peer = sock.getpeername()
            return f"{peer[0]}:{peer[1]}"
    raise last_error
