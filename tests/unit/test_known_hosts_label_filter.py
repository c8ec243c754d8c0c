"""known_hosts read for one host: the per-file index never changes a verdict.

A fleet run parses each known_hosts file once and each host then looks up the lines that
may name it (plain names by lookup; hashed, wildcard and negated patterns always), so
connecting K hosts costs O(K), not O(K²). These tests pin that the index is only an
optimisation, and that a file changed during the run is read again.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path

import paramiko
import pytest

from redmedic.connection import hostkeys as hk


def _key() -> tuple[str, bytes]:
    return "ssh-ed25519", b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20" + os.urandom(32)


def _line(names: str, key_type: str, blob: bytes) -> str:
    return f"{names} {key_type} {base64.b64encode(blob).decode()}"


KEY_TYPE, MINE = _key()
_, OTHER = _key()
LABEL = "[127.0.1.5]:2222"

CASES = {
    "plain": _line(LABEL, KEY_TYPE, MINE),
    "plain among other names": _line("redis-1,[127.0.1.5]:2222", KEY_TYPE, MINE),
    "hashed": _line(paramiko.HostKeys.hash_host(LABEL), KEY_TYPE, MINE),
    "wildcard": _line("[127.0.1.?]:2222", KEY_TYPE, MINE),
    "changed": _line(LABEL, KEY_TYPE, OTHER),
    "negated wildcard": _line("[127.0.1.*]:2222,!" + LABEL, KEY_TYPE, MINE),
    "revoked": "@revoked " + _line(LABEL, KEY_TYPE, MINE),
    "a neighbour with a longer address": _line("[127.0.1.55]:2222", KEY_TYPE, OTHER),
    "another port": _line("[127.0.1.5]:2223", KEY_TYPE, OTHER),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_filtered_read_gives_the_same_verdict(case: str, tmp_path: Path) -> None:
    others = [_line(f"[127.0.2.{n}]:2222", KEY_TYPE, _key()[1]) for n in range(50)]
    text = "\n".join([*others[:25], CASES[case], *others[25:]]) + "\n"
    (tmp_path / "kh").write_text(text)

    everything = hk.parse_known_hosts(text, str(tmp_path / "kh"))
    filtered = hk.load_entries([str(tmp_path / "kh")], LABEL)

    for blob in (MINE, OTHER):
        assert hk.verify(filtered, LABEL, KEY_TYPE, blob) == hk.verify(
            everything, LABEL, KEY_TYPE, blob
        )
    assert hk.preferred_algorithms(filtered, LABEL) == hk.preferred_algorithms(everything, LABEL)
    assert len(filtered) <= 2  # the 50 other hosts' lines were not decoded


def test_filtered_entries_keep_their_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "kh"
    path.write_text(
        "\n".join([_line("a.example", KEY_TYPE, OTHER), "# note", _line(LABEL, KEY_TYPE, MINE)])
    )
    (entry,) = hk.load_entries([str(path)], LABEL)
    assert (entry.file, entry.line, entry.key_blob) == (str(path), 3, MINE)


def test_a_key_recorded_during_the_run_is_seen_by_the_next_host(tmp_path: Path) -> None:
    path = tmp_path / "kh"
    path.write_text(_line("a.example", KEY_TYPE, OTHER) + "\n")
    assert hk.load_entries([str(path)], LABEL) == []
    assert (
        hk.record_key(str(path), hk.KeyName("127.0.1.5", 2222), KEY_TYPE, MINE)
        is hk.Verdict.UNKNOWN
    )
    (entry,) = hk.load_entries([str(path)], LABEL)
    assert (entry.line, entry.key_blob) == (2, MINE)
