"""What a host prints, made safe to show: no raw terminal escapes, no undecodable bytes.

Host output is decoded with surrogateescape (see `connection.base.CommandResult`), so it can
hold any byte, including ESC sequences that set the terminal's title, clear the screen or
move the cursor up over the diff a gate is about to ask about. Everything redmedic puts on a
screen passes through `visible`: C0 and C1 control characters (except newline and tab), DEL
and undecodable bytes are shown as the visible escapes `\\x1b`, `\\x9b`, `\\xff`, so what
the host sent can still be read, but never acted on by the terminal.
"""

from __future__ import annotations

import dataclasses
import re
from typing import TypeVar

# C0 except \t and \n, DEL, C1, the bidi embeddings/overrides/isolates (they reorder what a
# line shows, "Trojan Source"), and lone surrogates (undecodable bytes under surrogateescape).
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")

_T = TypeVar("_T")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if 0xDC80 <= code <= 0xDCFF:  # a byte surrogateescape could not decode: show the byte
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: str) -> str:
    """`text` with every control character and undecodable byte shown as an escape."""
    return _UNSAFE.sub(_escape, text)


def visible_fields(value: _T) -> _T:
    """`value` (an event, or anything inside one) with every string in it made `visible`."""
    if isinstance(value, str):
        return visible(value)  # type: ignore[return-value]
    if isinstance(value, tuple):
        return tuple(visible_fields(item) for item in value)  # type: ignore[return-value]
    if isinstance(value, list):
        return [visible_fields(item) for item in value]  # type: ignore[return-value]
    if isinstance(value, dict):
        return {visible_fields(k): visible_fields(v) for k, v in value.items()}  # type: ignore[return-value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = dataclasses.fields(value)
        changes = {f.name: visible_fields(getattr(value, f.name)) for f in fields}
        return dataclasses.replace(value, **changes)
    return value
