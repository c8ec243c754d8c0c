"""Host names as inventories write them: `web[01:20].eu:2222`, `[::1]:22`, `node-[a:f]`.

YAML and INI inventories share Ansible's rules for a host key: an optional `:PORT` after a
host name, an IPv4 address or a bracketed `[host]`, and ranges `[FIRST:LAST]` or
`[FIRST:LAST:STEP]` (numbers, zero-padded numbers, or letters) expanded to many hosts.
Something that is not a valid host name keeps its whole text as the name, with no port.
"""

from __future__ import annotations

import ipaddress
import re
import string

from redmedic.errors import InventoryError
from redmedic.model.inventory.model import Locate

_BRACKETED_PORT = re.compile(r"^\[(.+)\]:([0-9]+)$")
_HOST_PORT = re.compile(r"^((?:[^:\[\]]|\[[^\]]*\])*):([0-9]+)$")
_RANGE = r"\[(?:[a-z]:[a-z]|[0-9]+:[0-9]+)(?::[0-9]+)?\]"
_LABEL = rf"(?:\w|{_RANGE})(?:[\w-]|{_RANGE})*(?<![_-])"
_HOSTNAME = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*$", re.IGNORECASE)
_RANGE_HINT = (
    "write [FIRST:LAST] or [FIRST:LAST:STEP]: numbers (zero-padded to the same width) "
    "or letters, FIRST <= LAST"
)


def split_port(pattern: str) -> tuple[str, int | None]:
    """`host:port` -> (host, port); a pattern that is no valid host keeps its text, no port."""
    host, port = pattern, None
    for form in (_BRACKETED_PORT, _HOST_PORT):
        match = form.match(host)
        if match:
            host, port = match.group(1), int(match.group(2))
    if _HOSTNAME.match(host) or _is_ipv6(host):
        return host, port
    return pattern, None


def expand(pattern: str, where: Locate) -> tuple[list[str], int | None]:
    """The host names a host key stands for, and the port it gives them (if any)."""
    host, port = split_port(pattern)
    return (_expand_ranges(host, where) if "[" in host else [host]), port


def _is_ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def _expand_ranges(name: str, where: Locate) -> list[str]:
    head, bracket, rest = name.partition("[")
    inner, closed, tail = rest.partition("]")
    bounds = inner.split(":")
    if not bracket or not closed or len(bounds) not in (2, 3) or not bounds[1]:
        raise _bad(name, where)
    first, last = bounds[0] or "0", bounds[1]
    try:
        step = int(bounds[2]) if len(bounds) == 3 else 1
    except ValueError:
        raise _bad(name, where) from None
    if step < 1:
        raise _bad(name, where)
    items: list[str]
    if first.isdigit() and last.isdigit():
        width = len(first) if first.startswith("0") and len(first) > 1 else 0
        if width and len(last) != width:
            raise _bad(name, where)
        items = [str(i).zfill(width) for i in range(int(first), int(last) + 1, step)]
    elif len(first) == len(last) == 1 and first in string.ascii_letters and last.isalpha():
        start, stop = string.ascii_letters.find(first), string.ascii_letters.find(last)
        items = list(string.ascii_letters[start : stop + 1 : step]) if stop >= 0 else []
    else:
        items = []
    if not items:
        raise _bad(name, where)
    names: list[str] = []
    for item in items:
        full = f"{head}{item}{tail}"
        names.extend(_expand_ranges(full, where) if "[" in full else [full])
    return names


def _bad(name: str, where: Locate) -> InventoryError:
    return InventoryError(f"bad host range in {name!r}", where=where(), hint=_RANGE_HINT)
