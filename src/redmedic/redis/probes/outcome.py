"""The result type every probe returns: an outcome named by cause, plus evidence.

Probes report causes rather than raising, so a diagnose step can branch on
``result.outcome`` and show ``result.detail`` as the evidence. ``detail`` is one line
(report tables and JSON lines rely on that) and never carries a secret.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ProbeOutcome(StrEnum):
    """Why a connection attempt ended the way it did; values are stable report words."""

    OK = "ok"
    REFUSED = "refused"
    TIMEOUT = "timeout"
    NO_ROUTE = "no-route"
    PROTECTED_MODE = "protected-mode"
    AUTH_REQUIRED = "auth-required"
    AUTH_FAILED = "auth-failed"
    MAX_CLIENTS = "max-clients"
    OOM = "oom"
    LOADING = "loading"
    TLS = "tls"
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """One probe's verdict: the cause, one line of evidence, the target and the cost.

    ``address`` is the host exactly as probed (name or IP), so results line up with
    the inventory entry that produced them.
    """

    outcome: ProbeOutcome
    detail: str
    address: str
    port: int
    elapsed_ms: float

    def __post_init__(self) -> None:
        """Reject multi-line details early: reports print one row per probe."""
        if "\n" in self.detail or "\r" in self.detail:
            raise ValueError("ProbeResult.detail must be a single line; use one_line()")

    @property
    def ok(self) -> bool:
        """True when a client from here gets a working connection."""
        return self.outcome is ProbeOutcome.OK


def one_line(text: str) -> str:
    """Collapse all whitespace runs (newlines included) into single spaces."""
    return " ".join(text.split())


def redact(text: str, secret: str | None) -> str:
    """Replace every occurrence of ``secret`` so a detail can never leak a password."""
    if not secret:
        return text
    return text.replace(secret, "***")
