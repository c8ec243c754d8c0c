"""Masking of secrets in everything redmedic prints, logs or saves.

A value is secret when its variable is marked `sensitive` or is named like a password
(`*password*`, `*pass`, `*secret*`, `*token*`), and when it is the argument of a
`requirepass`/`masterauth` directive (in a file, a diff or a command). Masking happens
once, where events are emitted, so no reporter, log or plan file can forget it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import shlex
import threading
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "********"
# Shorter secrets are masked only where they stand whole (not inside a longer word): masking
# every "x" for a one-character password would garble all output and tell its value anyway.
MIN_SECRET_LENGTH = 4

_SECRET_NAME = re.compile(r"(password|passwd|secret|token|pass$)", re.IGNORECASE)
# One shell word: quoted pieces and bare characters run together (`'it'"'"'s'` is one value).
_VALUE = r"""(?P<value>(?:"[^"\n]*"|'[^'\n]*'|[^\s"']+)+)"""
# Where secrets stand in text we show: a redis.conf directive line (also inside a unified
# diff, after its +/-/space column, or after `FILE:` / `FILE:LINE:` as `grep -H/-n` print it),
# CONFIG GET's two-line answer (`requirepass` then the value, maybe numbered by redis-cli),
# `CONFIG SET requirepass VALUE`, and `redis-cli -a VALUE`.
_SECRET_SPOTS = (
    re.compile(
        r"^(?P<key>(?:[^\s:]*:(?:\d+:)?)?[ +-]?[ \t]*#?[ \t]*(?:requirepass|masterauth)[ \t]+)"
        + _VALUE,
        re.I | re.M,
    ),
    re.compile(
        r"""^(?P<key>(?:\d+\)[ \t]*)?"?(?:requirepass|masterauth)"?[ \t]*\r?\n"""
        r"""(?:\d+\)[ \t]*)?)(?!\d+\))""" + _VALUE,
        re.I | re.M,
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
            end = _line_end(text, at)
            if not text[at + len(word) : end].strip(" \t\r\"'"):  # CONFIG GET: value below
                end = _line_end(text, end + 1)
            found[start] = text[start:end]
            at = lowered.find(word, end)
    return "\n".join(found[start] for start in sorted(found))


def _line_end(text: str, at: int) -> int:
    end = text.find("\n", at)
    return len(text) if end == -1 else end


def _unquote(word: str) -> str:
    """A directive's value as the shell (or redis.conf) reads it: `'it'"'"'s'` is `it's`."""
    try:
        parts = shlex.split(word)
    except ValueError:
        parts = []
    return parts[0] if len(parts) == 1 else word.strip("\"'")


def directive_secrets(text: str) -> list[str]:
    """The values of `requirepass`/`masterauth` set in `text` (config lines or commands)."""
    text = _keyword_lines(text)
    return [
        _unquote(m.group("value"))
        for spot in _SECRET_SPOTS
        for m in spot.finditer(text)
        if "#" not in m.group("key")  # a commented-out example is not in force
        and MASK not in m.group("value")  # already masked: nothing to learn
    ]


def forms(value: str) -> set[str]:
    """Every way `value` is written in text we show: as is, shell-quoted (the `quote`
    filter), JSON- and Python-escaped, and the inside of a `'...'` shell word."""
    found = {value, shlex.quote(value), json.dumps(value)[1:-1], repr(value)[1:-1]}
    found.add(value.replace("'", "'\"'\"'"))
    found.add(value.replace("'", "'\\''"))
    return {form for form in found if form}


def _pattern(value: str) -> re.Pattern[str]:
    """Where a secret too short to mask everywhere stands whole, not inside a longer word."""
    return re.compile(r"(?<![\w])" + re.escape(value) + r"(?![\w])")


class Masker:
    """Replaces every known secret value (and directive values) in text with a mask.

    Thread-safe because a host learns new secrets (e.g. a requirepass read from its
    redis.conf) while its events are being emitted.
    """

    def __init__(self, values: Iterable[str] = ()) -> None:
        self._lock = threading.Lock()
        self._values: set[str] = set()
        self._sorted: list[str] | None = None  # _forms(), kept until a secret is added
        for value in values:
            self.add(value)

    def add(self, value: object) -> None:
        """Treat `value` as a secret from now on (empty values and the mask are ignored)."""
        text = "" if value is None else str(value)
        if text and text != MASK:
            with self._lock:
                self._values.add(text)
                self._sorted = None

    def _forms(self) -> list[str]:
        """Every form of every secret, longest first (so a longer one is masked whole)."""
        with self._lock:
            if self._sorted is None:
                every = {form for value in self._values for form in forms(value)}
                self._sorted = sorted(every, key=len, reverse=True)
            return self._sorted

    @staticmethod
    def _replace(text: str, form: str, by: str) -> str:
        if len(form) < MIN_SECRET_LENGTH:
            return _pattern(form).sub(lambda _: by, text)
        return text.replace(form, by)

    def add_from_vars(self, variables: Mapping[str, Any], sensitive: Iterable[str] = ()) -> None:
        """Register the values of password-like and explicitly sensitive variables."""
        names = set(sensitive)
        for name, value in variables.items():
            self._add_nested(value, name in names or is_secret_name(str(name)))

    def _add_nested(self, value: object, secret: bool) -> None:
        """`db: {password: ...}` and `tokens: [...]`: a secret name anywhere on the way down
        makes every value under it secret."""
        if isinstance(value, Mapping):
            for key, item in value.items():
                self._add_nested(item, secret or is_secret_name(str(key)))
        elif isinstance(value, list | tuple | set | frozenset):
            for item in value:
                self._add_nested(item, secret)
        elif secret and isinstance(value, str | int) and not isinstance(value, bool):
            self.add(value)

    def add_from_text(self, text: str | bytes) -> None:
        """Register the requirepass/masterauth values set in a file's text or a command."""
        if isinstance(text, bytes):
            text = text.decode("utf-8", "surrogateescape")
        # Known secrets first: the directive pattern must not learn a fragment of one.
        for value in directive_secrets(self._known_masked(text)):
            self.add(value)

    def mask(self, text: str) -> str:
        """`text` with every secret replaced by the mask; longest values first."""
        if not text:
            return text
        text = self._known_masked(text)  # first: a multi-word password is masked whole
        for spot in _SECRET_SPOTS:
            text = spot.sub(lambda m: m.group("key") + MASK, text)
        return text

    def seal(self, text: str, salt: bytes) -> str:
        """`text` with every known secret replaced by a placeholder keyed with `salt`.

        Plan files and the audit log store sealed text: it can be applied later by a masker
        that knows the same secrets (same inventory and -e), yet shows none of them.
        """
        for form in self._forms():
            text = self._replace(text, form, f"⟦redmedic-secret:{_token(form, salt)}⟧")
        return text

    def _known_masked(self, text: str) -> str:
        for form in self._forms():
            text = self._replace(text, form, MASK)
        return text

    def unseal(self, text: str, salt: bytes) -> str:
        """Put the secrets back into sealed text; UnknownSecretError if one is not known."""
        known = {_token(form, salt): form for form in self._forms()}
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
