"""Masking of secrets in everything redmedic prints, logs or saves.

A value is secret when its variable is marked `sensitive` or is named like a password
(`*password*`, `*pass`, `*secret*`, `*token*`), and when it is the argument of a
`requirepass`/`masterauth` directive (in a file, a diff or a command). Masking happens
once, where events are emitted, so no reporter, log or plan file can forget it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import threading
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "********"

_SECRET_NAME = re.compile(r"(password|passwd|secret|token|pass$)", re.IGNORECASE)
_VALUE = r"""(?P<value>"[^"\n]*"|'[^'\n]*'|[^\s"']+)"""
# Where secrets stand in text we show: a redis.conf directive line (also inside a unified
# diff, after its +/-/space column), `CONFIG SET requirepass VALUE`, and `redis-cli -a VALUE`.
_SECRET_SPOTS = (
    re.compile(
        r"^(?P<key>[ +-]?[ \t]*#?[ \t]*(?:requirepass|masterauth)[ \t]+)" + _VALUE, re.I | re.M
    ),
    re.compile(r"(?P<key>\bconfig\s+set\s+(?:requirepass|masterauth)\s+)" + _VALUE, re.I),
    re.compile(r"(?P<key>\bredis-cli\b[^\n]*?\s(?:-a|--pass)\s+)" + _VALUE),
)


_SEALED = re.compile(r"⟦redmedic-secret:([0-9a-f]{32})⟧")


class UnknownSecretError(ValueError):
    """A sealed text names a secret this masker does not know (other inventory or -e)."""


def is_secret_name(name: str) -> bool:
    """True for variable names that conventionally hold secrets."""
    return bool(_SECRET_NAME.search(name))


_KEYWORDS = ("requirepass", "masterauth", "redis-cli")


def _keyword_lines(text: str) -> str:
    """Only the lines that name a keyword: every secret spot needs one on its line, and a
    100 KB redis.conf has a handful, so the patterns never scan the rest (str.find is C)."""
    lowered = text.lower()
    found: dict[int, str] = {}
    for word in _KEYWORDS:
        at = lowered.find(word)
        while at != -1:
            start = text.rfind("\n", 0, at) + 1
            end = text.find("\n", at)
            end = len(text) if end == -1 else end
            found[start] = text[start:end]
            at = lowered.find(word, end)
    return "\n".join(found[start] for start in sorted(found))


def directive_secrets(text: str) -> list[str]:
    """The values of `requirepass`/`masterauth` set in `text` (config lines or commands)."""
    text = _keyword_lines(text)
    return [
        m.group("value").strip("\"'")
        for spot in _SECRET_SPOTS
        for m in spot.finditer(text)
        if "#" not in m.group("key")  # a commented-out example is not in force
    ]


class Masker:
    """Replaces every known secret value (and directive values) in text with a mask.

    Thread-safe because a host learns new secrets (e.g. a requirepass read from its
    redis.conf) while its events are being emitted.
    """

    def __init__(self, values: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._values: set[str] = set()
        for value in values:
            self.add(value)

    def add(self, value: object) -> None:
        """Treat `value` as a secret from now on (empty values are ignored)."""
        text = "" if value is None else str(value)
        if text:
            with self._lock:
                self._values.add(text)

    def add_from_vars(self, variables: Mapping[str, Any], sensitive: Iterable[str] = ()) -> None:
        """Register the values of password-like and explicitly sensitive variables."""
        names = set(sensitive)
        for name, value in variables.items():
            if (name in names or is_secret_name(name)) and isinstance(value, str | int):
                self.add(value)

    def add_from_text(self, text: str | bytes) -> None:
        """Register the requirepass/masterauth values set in a file's text or a command."""
        if isinstance(text, bytes):
            text = text.decode("utf-8", "surrogateescape")
        for value in directive_secrets(text):
            self.add(value)

    def mask(self, text: str) -> str:
        """`text` with every secret replaced by the mask; longest values first."""
        if not text:
            return text
        with self._lock:
            values = sorted(self._values, key=len, reverse=True)
        for value in values:  # known values first: a multi-word password is masked whole
            text = text.replace(value, MASK)
        for spot in _SECRET_SPOTS:
            text = spot.sub(lambda m: m.group("key") + MASK, text)
        return text

    def seal(self, text: str, salt: bytes) -> str:
        """`text` with every known secret replaced by a placeholder keyed with `salt`.

        Plan files and the audit log store sealed text: it can be applied later by a masker
        that knows the same secrets (same inventory and -e), yet shows none of them.
        """
        with self._lock:
            values = sorted(self._values, key=len, reverse=True)
        for value in values:
            text = text.replace(value, f"⟦redmedic-secret:{_token(value, salt)}⟧")
        return text

    def unseal(self, text: str, salt: bytes) -> str:
        """Put the secrets back into sealed text; UnknownSecretError if one is not known."""
        with self._lock:
            known = {_token(value, salt): value for value in self._values}
        missing: list[str] = []

        def restore(match: re.Match[str]) -> str:
            value = known.get(match.group(1))
            if value is None:
                missing.append(match.group(1))
                return match.group(0)
            return value

        text = _SEALED.sub(restore, text)
        if missing:
            raise UnknownSecretError(
                f"{len(missing)} secret(s) in the saved plan are not known now — "
                "use the same inventory and -e values as when it was made"
            )
        return text


def hide_sealed(text: str) -> str:
    """A sealed text as it may be shown: each secret's placeholder masked."""
    return _SEALED.sub(MASK, text)


def _token(value: str, salt: bytes) -> str:
    return hmac.new(salt, value.encode("utf-8", "surrogateescape"), hashlib.sha256).hexdigest()[:32]
