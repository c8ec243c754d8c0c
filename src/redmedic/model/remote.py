"""A file as read from a host: a plain value, so the plan (model/) can hold what it was
planned against without knowing how files are read (connection/ builds these)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

ENCODING = "utf-8"
# surrogateescape: undecodable bytes survive a decode/encode round trip unchanged, so text
# handed to steps can always be turned back into the exact bytes that were on the host.
ERRORS = "surrogateescape"


@dataclass(frozen=True)
class RemoteFile:
    """A file as read from the host: exact bytes plus the attributes a rewrite must keep."""

    path: str
    content: bytes
    mode: int
    owner: str
    group: str

    @property
    def sha256(self) -> str:
        """Hex digest of `content`: the token `write_file` uses to detect drift."""
        return hashlib.sha256(self.content).hexdigest()
