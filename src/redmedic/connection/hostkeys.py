"""Strict SSH host-key checking against OpenSSH known_hosts files, with fix-it messages.

Why not paramiko's `HostKeys`: it forgets where an entry came from, so it cannot say which
file and line hold a stale key, and its "missing key policy" hook cannot tell "unknown" from
"changed". Here the known_hosts text is parsed into entries that remember their file and
line, and `verify` is a pure function (key in, verdict out) that unit tests cover without a
server. Only `record_key` touches the disk, under an exclusive `flock` so hosts connecting
in parallel threads (or processes) never interleave or duplicate lines.
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import hashlib
import hmac
import os
import re
import shlex
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import Enum

USER_KNOWN_HOSTS = "~/.ssh/known_hosts"

# Host-key algorithms to offer first for a key type already on record, so the server shows
# us the key we can compare (an RSA key is negotiated as one of its signature algorithms).
_ALGORITHMS_FOR_TYPE = {"ssh-rsa": ("rsa-sha2-512", "rsa-sha2-256", "ssh-rsa")}


@dataclass(frozen=True)
class KnownHostEntry:
    """One known_hosts line: where it is, whom it names, and the key it pins."""

    file: str
    line: int
    patterns: tuple[str, ...]
    key_type: str
    key_blob: bytes
    marker: str | None = None  # "@revoked" or "@cert-authority"

    @property
    def fingerprint(self) -> str:
        """OpenSSH-style SHA256 fingerprint of the pinned key."""
        return fingerprint(self.key_blob)


class Verdict(Enum):
    """What the known_hosts files say about the key a host presented."""

    KNOWN = "known"
    UNKNOWN = "unknown"
    CHANGED = "changed"
    REVOKED = "revoked"


def host_label(address: str, port: int) -> str:
    """The name OpenSSH files a host under: `addr` on port 22, `[addr]:port` otherwise."""
    return address if port == 22 else f"[{address}]:{port}"


@dataclass(frozen=True)
class KeyName:
    """Under which name a host's key is looked up and recorded, and where the host is.

    `label` is the HostKeyAlias when there is one (used verbatim, no port, as OpenSSH
    does: it names one host behind a tunnel or a shared address), else `[addr]:port`.
    The address and port stay for the `ssh-keyscan` hint.
    """

    address: str
    port: int
    alias: str | None = None

    @property
    def label(self) -> str:
        """The known_hosts name: the alias, or `host_label(address, port)`."""
        return self.alias or host_label(self.address, self.port)


def fingerprint(key_blob: bytes) -> str:
    """`SHA256:<base64, unpadded>` as printed by `ssh-keygen -l` and by ssh itself."""
    digest = hashlib.sha256(key_blob).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


def parse_known_hosts(text: str, file: str) -> list[KnownHostEntry]:
    """Parse known_hosts text; lines we cannot read are skipped, as ssh itself does."""
    entries: list[KnownHostEntry] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        fields = raw.split()
        if not fields or fields[0].startswith("#"):
            continue
        marker = None
        if fields[0].startswith("@"):
            marker, fields = fields[0], fields[1:]
        if len(fields) < 3:
            continue
        try:
            blob = base64.b64decode(fields[2], validate=True)
        except (binascii.Error, ValueError):
            continue
        entries.append(
            KnownHostEntry(
                file=file,
                line=number,
                patterns=tuple(fields[0].split(",")),
                key_type=fields[1],
                key_blob=blob,
                marker=marker,
            )
        )
    return entries


@dataclass(frozen=True)
class _FileIndex:
    """One known_hosts file's entries, found by the plain names they list.

    A plain pattern names a host only when it equals the host's label, so a host's own lines
    are one lookup away; hashed (`|1|`), wildcard and negated patterns need the real match
    and are handed to every host.
    """

    entries: tuple[KnownHostEntry, ...]
    by_name: dict[str, tuple[int, ...]]
    others: tuple[int, ...]

    @classmethod
    def of(cls, entries: list[KnownHostEntry]) -> _FileIndex:
        by_name: dict[str, list[int]] = {}
        others: list[int] = []
        for position, entry in enumerate(entries):
            if any(p[:1] in ("!", "|") or "*" in p or "?" in p for p in entry.patterns):
                others.append(position)
                continue
            for pattern in entry.patterns:
                by_name.setdefault(pattern.lower(), []).append(position)
        named = {name: tuple(found) for name, found in by_name.items()}
        return cls(tuple(entries), named, tuple(others))

    def for_label(self, label: str) -> list[KnownHostEntry]:
        """The entries that may name `label`, in file order."""
        positions = sorted({*self.by_name.get(label.lower(), ()), *self.others})
        return [self.entries[p] for p in positions]


# path -> ((inode, size, mtime), index): a fleet run parses each file once, not once per
# host (which made connecting K hosts cost O(K²)); a changed file is parsed again.
_INDEXES: dict[str, tuple[tuple[int, int, int], _FileIndex]] = {}
_INDEXES_LOCK = threading.Lock()


def _file_index(path: str) -> _FileIndex:
    with open(path, encoding="utf-8", errors="replace") as handle:
        info = os.fstat(handle.fileno())
        version = (info.st_ino, info.st_size, info.st_mtime_ns)
        with _INDEXES_LOCK:
            cached = _INDEXES.get(path)
        if cached is not None and cached[0] == version:
            return cached[1]
        index = _FileIndex.of(parse_known_hosts(handle.read(), path))
    with _INDEXES_LOCK:
        _INDEXES[path] = (version, index)
    return index


def _pattern_matches(pattern: str, label: str) -> bool:
    if pattern.startswith("|1|"):
        try:
            _, _, salt_b64, hash_b64 = pattern.split("|")
            salt = base64.b64decode(salt_b64)
            expected = base64.b64decode(hash_b64)
        except (ValueError, binascii.Error):
            return False
        actual = hmac.new(salt, label.encode(), hashlib.sha1).digest()
        return hmac.compare_digest(actual, expected)
    if "*" not in pattern and "?" not in pattern:
        return pattern.lower() == label.lower()
    # OpenSSH patterns know only `*` and `?`; brackets are literal ("[addr]:port").
    regex = re.escape(pattern.lower()).replace(r"\*", ".*").replace(r"\?", ".")
    return re.fullmatch(regex, label.lower()) is not None


def entry_matches(entry: KnownHostEntry, label: str) -> bool:
    """True when one of the entry's patterns names `label` and no `!negated` one excludes it."""
    matched = False
    for pattern in entry.patterns:
        if pattern.startswith("!"):
            if _pattern_matches(pattern[1:], label):
                return False
        elif _pattern_matches(pattern, label):
            matched = True
    return matched


def entries_for(entries: Iterable[KnownHostEntry], label: str) -> list[KnownHostEntry]:
    """The plain and revoked entries that name `label` (CA lines are not host keys)."""
    return [e for e in entries if e.marker != "@cert-authority" and entry_matches(e, label)]


def verify(
    entries: Sequence[KnownHostEntry], label: str, key_type: str, key_blob: bytes
) -> tuple[Verdict, KnownHostEntry | None]:
    """Judge a presented key; for CHANGED/REVOKED also return the entry to blame."""
    mine = entries_for(entries, label)
    for entry in mine:
        if entry.marker == "@revoked" and entry.key_blob == key_blob:
            return Verdict.REVOKED, entry
    pinned = [e for e in mine if e.marker is None]
    if any(e.key_type == key_type and e.key_blob == key_blob for e in pinned):
        return Verdict.KNOWN, None
    if not pinned:
        return Verdict.UNKNOWN, None
    same_type = [e for e in pinned if e.key_type == key_type]
    return Verdict.CHANGED, (same_type or pinned)[0]


def preferred_algorithms(entries: Sequence[KnownHostEntry], label: str) -> list[str]:
    """Host-key algorithms to put first, in order, for the keys already on record."""
    wanted: list[str] = []
    for entry in entries_for(entries, label):
        if entry.marker is None:
            for algorithm in _ALGORITHMS_FOR_TYPE.get(entry.key_type, (entry.key_type,)):
                if algorithm not in wanted:
                    wanted.append(algorithm)
    return wanted


def known_hosts_files(
    user_files: Sequence[str], global_files: Sequence[str], extra: Sequence[str] = ()
) -> list[str]:
    """Every file consulted: the host's UserKnownHostsFile and GlobalKnownHostsFile lists
    as they are (`SshOptions` holds OpenSSH's defaults, `~/.ssh/known_hosts` and
    `/etc/ssh/ssh_known_hosts` among them; empty means `none`), then each --known-hosts FILE.
    """
    files: list[str] = []
    for name in (*user_files, *global_files, *extra):
        path = os.path.expanduser(name)
        if path not in files:
            files.append(path)
    return files


def trust_file(extra: Sequence[str], user_files: Sequence[str] = ()) -> str:
    """Where `--trust-new-host-keys` records keys: the first --known-hosts file, else the
    first UserKnownHostsFile (as `ssh` records there), else `~/.ssh/known_hosts`."""
    return os.path.expanduser((*extra, *user_files, USER_KNOWN_HOSTS)[0])


def load_entries(files: Sequence[str], label: str | None = None) -> list[KnownHostEntry]:
    """Read every existing file; a missing file simply knows no hosts (OSError otherwise).

    With `label`, only the entries that may name that host (the others cannot change any
    verdict about it), found without looking at other hosts' lines.
    """
    entries: list[KnownHostEntry] = []
    for path in files:
        try:
            index = _file_index(path)
        except FileNotFoundError:
            continue
        entries.extend(index.entries if label is None else index.for_label(label))
    return entries


def _keyscan(name: KeyName, file: str) -> str:
    """The command that records the host's key under `name.label` in `file`."""
    port_flag = f"-p {name.port} " if name.port != 22 else ""
    scan = f"ssh-keyscan {port_flag}{name.address}"
    if name.alias is not None:  # keyscan prints the address: file the key under the alias
        scan += f" | sed 's/^[^ ]*/{name.alias}/'"
    return f"{scan} >> {_display_path(file)}"


def unknown_key_message(name: KeyName, key_type: str, key_blob: bytes, file: str) -> str:
    """The message for an unknown key: the fingerprint to verify and the command to record it."""
    return (
        f"host key for {name.label} is unknown — verify its fingerprint ({fingerprint(key_blob)}, "
        f"{key_type}) out of band, then add it with `{_keyscan(name, file)}`, "
        "or run with --trust-new-host-keys"
    )


def changed_key_message(name: KeyName, key_type: str, key_blob: bytes, old: KnownHostEntry) -> str:
    """The message for a changed key: where the old one is, both fingerprints, the fix."""
    label = name.label
    return (
        f"host key for {label} has CHANGED: {old.file}:{old.line} has {old.fingerprint} "
        f"({old.key_type}), the host now presents {fingerprint(key_blob)} ({key_type}) — "
        "someone may be intercepting the connection; if the host was really reinstalled, "
        f"remove the old key with `ssh-keygen -R {shlex.quote(label)} -f "
        f"{shlex.quote(old.file)}` and connect again"
    )


def revoked_key_message(name: KeyName, key_blob: bytes, entry: KnownHostEntry) -> str:
    """The message for a key marked @revoked."""
    return (
        f"host key {fingerprint(key_blob)} for {name.label} is marked @revoked "
        f"in {entry.file}:{entry.line} — refusing to connect"
    )


def record_key(path: str, name: KeyName, key_type: str, key_blob: bytes) -> Verdict:
    """Append a newly trusted key unless it (or a conflicting one) is already there.

    Runs under an exclusive flock and re-reads the file inside it, so parallel connections
    to the same host write one line, and a conflicting key recorded meanwhile is reported
    (CHANGED) rather than silently added next to it.
    """
    label = name.label
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, mode=0o700, exist_ok=True)
    with open(path, "a+", encoding="utf-8") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            handle.seek(0)
            text = handle.read()
            verdict, _ = verify(parse_known_hosts(text, path), label, key_type, key_blob)
            if verdict is not Verdict.UNKNOWN:
                return verdict
            prefix = "" if not text or text.endswith("\n") else "\n"
            encoded = base64.b64encode(key_blob).decode("ascii")
            handle.write(f"{prefix}{label} {key_type} {encoded}\n")
            handle.flush()
            os.fsync(handle.fileno())
            return Verdict.UNKNOWN
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _display_path(path: str) -> str:
    home = os.path.expanduser("~")
    if home not in ("", "/") and path.startswith(home + os.sep):
        return "~" + path[len(home) :]
    return shlex.quote(path)
