"""The connection layer's pure parts: parsers, host-key verdicts, the sudo wrapper.

The base `Connection` is driven here by a scripted `_exec` (command in, canned answer out),
so the file-operation protocol is checked without any host. The file scripts themselves
run for real against a temp dir through `LocalConnection`; so does the first become
command's script (test_become_script.py).
"""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

import paramiko
import pytest

from redmedic.connection import CommandResult, Connection, ConnectOptions, RemoteFile
from redmedic.connection import hostkeys as hk
from redmedic.connection.base import (
    short_command,
    sudo_command,
)
from redmedic.connection.local import LocalConnection
from redmedic.connection.scripts import marker_line, new_marker, parse_stat_line, split_sections
from redmedic.errors import CommandError, DriftError
from redmedic.model.inventory import Host
from redmedic.model.sshconfig import SshOptions

# --- small values ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("640 root redis", (0o640, "root", "redis")),
        ("4755 root root\n", (0o4755, "root", "root")),
        ("600 UNKNOWN UNKNOWN", (0o600, "UNKNOWN", "UNKNOWN")),
    ],
)
def test_stat_lines_are_parsed(line: str, expected: tuple[int, str, str]) -> None:
    assert parse_stat_line(line) == expected


@pytest.mark.parametrize("line", ["", "640 root", "64x root root", "640 root root extra"])
def test_surprising_stat_lines_are_rejected(line: str) -> None:
    with pytest.raises(ValueError):
        parse_stat_line(line)


def test_a_result_tail_prefers_stderr_and_falls_back_to_stdout() -> None:
    failing = CommandResult("x", 1, "a\nb\n", "e1\ne2\ne3\n")
    quiet = CommandResult("x", 1, "1\n2\n3\n4\n5\n6\n7\n", "  \n")

    assert not failing.ok and CommandResult("x", 0, "", "").ok
    assert failing.tail(2) == "e2\ne3"
    assert quiet.tail() == "3\n4\n5\n6\n7"
    assert quiet.tail(0) == ""


def test_a_remote_file_hash_is_the_sha256_of_its_bytes() -> None:
    found = RemoteFile("/etc/redis/redis.conf", b"bind 127.0.0.1\n", 0o640, "redis", "redis")
    assert found.sha256 == hashlib.sha256(b"bind 127.0.0.1\n").hexdigest()


def test_sudo_wrapping_quotes_the_command_and_never_holds_a_password() -> None:
    wrapped = sudo_command("echo 'hi' > /tmp/x", with_password=True)

    assert wrapped == "sudo -S -k -p '' -- /bin/sh -c 'echo '\"'\"'hi'\"'\"' > /tmp/x'"
    assert sudo_command("true", with_password=False) == "sudo -n -- /bin/sh -c true"


def test_long_commands_are_shortened_for_messages() -> None:
    assert short_command("systemctl restart redis") == "systemctl restart redis"
    assert short_command("set -u\np=/etc/x\n") == "set -u…"
    assert len(short_command("x" * 200)) == 80


# --- host keys -------------------------------------------------------------------------


def _key() -> tuple[str, bytes]:
    """A random ed25519 public key blob (the wire format known_hosts stores)."""
    blob = b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20" + os.urandom(32)
    return "ssh-ed25519", blob


def _line(label: str, key_type: str, blob: bytes) -> str:
    return f"{label} {key_type} {base64.b64encode(blob).decode()}"


def test_host_labels_follow_openssh() -> None:
    assert hk.host_label("10.0.0.5", 22) == "10.0.0.5"
    assert hk.host_label("127.0.1.5", 2222) == "[127.0.1.5]:2222"


def test_fingerprints_look_like_ssh_keygen_output() -> None:
    key = paramiko.RSAKey.generate(1024)
    assert hk.fingerprint(key.asbytes()) == key.fingerprint  # "SHA256:..." unpadded


def test_known_hosts_parsing_keeps_file_and_line_and_skips_junk() -> None:
    key_type, blob = _key()
    text = "\n".join(
        [
            "# comment",
            "",
            _line("a.example,10.0.0.1", key_type, blob),
            "broken-line",
            "host ssh-ed25519 not-base64!!",
            "@cert-authority *.example " + _line("", key_type, blob).strip(),
            "@revoked " + _line("b.example", key_type, blob),
        ]
    )
    entries = hk.parse_known_hosts(text, "/f")

    assert [(e.line, e.marker) for e in entries] == [
        (3, None),
        (6, "@cert-authority"),
        (7, "@revoked"),
    ]
    assert entries[0].patterns == ("a.example", "10.0.0.1")
    assert entries[0].key_blob == blob and entries[0].file == "/f"


def test_hashed_wildcard_negated_and_bracketed_names_match_like_ssh() -> None:
    key_type, blob = _key()
    hashed = paramiko.HostKeys.hash_host("[127.0.1.5]:2222")
    entries = hk.parse_known_hosts(
        "\n".join(
            [
                _line(hashed, key_type, blob),
                _line("*.example,!bad.example", key_type, blob),
                _line("[127.0.1.6]:2222", key_type, blob),
            ]
        ),
        "/f",
    )

    assert hk.entry_matches(entries[0], "[127.0.1.5]:2222")
    assert not hk.entry_matches(entries[0], "[127.0.1.5]:2223")
    assert hk.entry_matches(entries[1], "good.example")
    assert not hk.entry_matches(entries[1], "bad.example")
    assert hk.entry_matches(entries[2], "[127.0.1.6]:2222")
    assert not hk.entry_matches(entries[2], "1")  # brackets are literal, not a class


def test_verdicts_known_unknown_changed_revoked() -> None:
    key_type, blob = _key()
    _, other = _key()
    label = "[127.0.1.5]:2222"
    entries = hk.parse_known_hosts(
        _line("x", key_type, other) + "\n" + _line(label, key_type, blob) + "\n", "/f"
    )

    assert hk.verify(entries, label, key_type, blob) == (hk.Verdict.KNOWN, None)
    assert hk.verify(entries, "[127.0.1.9]:2222", key_type, blob) == (hk.Verdict.UNKNOWN, None)
    verdict, old = hk.verify(entries, label, key_type, other)
    assert verdict is hk.Verdict.CHANGED and old is not None and old.line == 2
    revoked = hk.parse_known_hosts("@revoked " + _line(label, key_type, blob), "/r")
    assert hk.verify([*entries, *revoked], label, key_type, blob)[0] is hk.Verdict.REVOKED


def test_known_key_types_are_offered_first() -> None:
    key_type, blob = _key()
    entries = hk.parse_known_hosts(
        _line("h", "ssh-rsa", blob) + "\n" + _line("h", key_type, blob), "/f"
    )
    assert hk.preferred_algorithms(entries, "h") == [
        "rsa-sha2-512",
        "rsa-sha2-256",
        "ssh-rsa",
        "ssh-ed25519",
    ]


def test_messages_carry_the_fix_commands() -> None:
    key_type, blob = _key()
    name = hk.KeyName("127.0.1.5", 2222)
    unknown = hk.unknown_key_message(name, key_type, blob, "/k/known hosts")
    assert "host key for [127.0.1.5]:2222 is unknown" in unknown
    assert f"({hk.fingerprint(blob)}, ssh-ed25519)" in unknown
    assert "`ssh-keyscan -p 2222 127.0.1.5 >> '/k/known hosts'`" in unknown
    assert "`ssh-keyscan 10.0.0.5 >>" in hk.unknown_key_message(
        hk.KeyName("10.0.0.5", 22), key_type, blob, "f"
    )

    old = hk.parse_known_hosts(_line("[127.0.1.5]:2222", key_type, b"old"), "/k/kh")[0]
    changed = hk.changed_key_message(name, key_type, blob, old)
    assert "/k/kh:1 has SHA256:" in changed
    assert "`ssh-keygen -R '[127.0.1.5]:2222' -f /k/kh`" in changed


def test_recording_keys_creates_the_file_once_even_in_parallel(tmp_path: Path) -> None:
    key_type, blob = _key()
    path = tmp_path / "new" / ".ssh" / "known_hosts"
    verdicts: list[hk.Verdict] = []

    def record() -> None:
        verdicts.append(hk.record_key(str(path), hk.KeyName("127.0.1.5", 2222), key_type, blob))

    threads = [threading.Thread(target=record) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert path.read_text() == _line("[127.0.1.5]:2222", key_type, blob) + "\n"
    assert sorted(v.value for v in verdicts) == ["known"] * 7 + ["unknown"]
    _, other = _key()
    assert (
        hk.record_key(str(path), hk.KeyName("127.0.1.5", 2222), key_type, other)
        is hk.Verdict.CHANGED
    )
    assert path.read_text().count("\n") == 1


def test_known_hosts_files_are_openssh_defaults_then_the_extra_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    defaults = SshOptions()  # what the ssh config gives a host that sets nothing
    files = hk.known_hosts_files(
        defaults.user_known_hosts_files, defaults.global_known_hosts_files, ["/extra"]
    )
    assert files == [
        str(tmp_path / ".ssh/known_hosts"),
        str(tmp_path / ".ssh/known_hosts2"),
        "/etc/ssh/ssh_known_hosts",
        "/etc/ssh/ssh_known_hosts2",
        "/extra",
    ]
    assert hk.known_hosts_files(["~/mine"], ["/etc/ours"], ["/extra"]) == [
        str(tmp_path / "mine"),
        "/etc/ours",
        "/extra",
    ]
    assert hk.known_hosts_files([], [], ["/extra"]) == ["/extra"]  # UserKnownHostsFile none
    assert hk.trust_file([]) == str(tmp_path / ".ssh/known_hosts")
    assert hk.trust_file([], ["~/mine", "~/other"]) == str(tmp_path / "mine")
    assert hk.trust_file(["/extra", "/more"], ["~/mine"]) == "/extra"


def test_a_host_key_alias_is_the_name_looked_up_and_in_the_hints() -> None:
    key_type, blob = _key()
    name = hk.KeyName("10.0.0.5", 2222, alias="db1.internal")
    assert name.label == "db1.internal"  # verbatim: OpenSSH adds no port to an alias
    unknown = hk.unknown_key_message(name, key_type, blob, "/k/kh")
    assert "host key for db1.internal is unknown" in unknown
    assert "`ssh-keyscan -p 2222 10.0.0.5 | sed 's/^[^ ]*/db1.internal/' >> /k/kh`" in unknown
    entries = hk.parse_known_hosts(_line("db1.internal", key_type, blob), "/k/kh")
    assert hk.verify(entries, name.label, key_type, blob)[0] is hk.Verdict.KNOWN
    assert hk.verify(entries, "[10.0.0.5]:2222", key_type, blob)[0] is hk.Verdict.UNKNOWN


# --- sudo decisions, with a scripted host ----------------------------------------------


class Scripted(Connection):
    """A connection whose host is a function: (command, stdin) -> (rc, stdout, stderr)."""

    def __init__(self, host: Host, answer: Callable[[str, bytes], tuple[int, str, str]]) -> None:
        super().__init__(host)
        self.answer = answer
        self.calls: list[tuple[str, bytes]] = []

    def _exec(self, command: str, stdin: bytes, timeout: float | None) -> tuple[int, bytes, bytes]:
        self.calls.append((command, stdin))
        rc, out, err = self.answer(command, stdin)
        return rc, out.encode(), err.encode()

    def close(self) -> None:
        pass


def host(**changes: object) -> Host:
    values: dict[str, object] = {"name": "web1", "address": "10.0.0.5", "user": "admin"}
    values.update(changes)
    return Host(**values)  # type: ignore[arg-type]


def test_file_protocol_answers_become_values_and_errors() -> None:
    replies = {
        "read": (0, "redmedic:file\n640 root redis\nbind 127.0.0.1\n", ""),
        "drift": (65, "redmedic:drift 0123456789abcdef\n", ""),
        "full": (1, "", "cat: write error: No space left on device\n"),
    }
    mode = ["read"]
    conn = Scripted(host(), lambda command, stdin: replies[mode[0]])

    assert conn.read_file("/etc/redis/redis.conf") == RemoteFile(
        "/etc/redis/redis.conf", b"bind 127.0.0.1\n", 0o640, "root", "redis"
    )
    mode[0] = "drift"
    with pytest.raises(DriftError, match=r"web1: /x changed on the host .*0123456789ab"):
        conn.write_file("/x", b"new", expected_sha256="f" * 64)
    mode[0] = "full"
    with pytest.raises(CommandError, match=r"cannot write /x \(/x is unchanged\).*No space left"):
        conn.write_file("/x", b"new", expected_sha256="f" * 64)


# --- the file scripts, run for real on a temp dir ---------------------------------------


@pytest.fixture
def local() -> LocalConnection:
    return LocalConnection(host(connection="local"), ConnectOptions())


def test_writing_through_a_symlink_edits_the_target(local: LocalConnection, tmp_path: Path) -> None:
    target = tmp_path / "real.conf"
    target.write_bytes(b"old\n")
    link = tmp_path / "link.conf"
    link.symlink_to(target)
    found = local.read_file(str(link))
    assert found is not None

    backup = local.write_file(str(link), b"new\n", expected_sha256=found.sha256)

    assert link.is_symlink() and target.read_bytes() == b"new\n"
    assert backup is not None and backup.startswith(str(target) + ".redmedic-")
    local.restore_file(str(link), backup)
    assert target.read_bytes() == b"old\n" and link.is_symlink()


def test_two_writes_in_one_second_keep_both_backups(local: LocalConnection, tmp_path: Path) -> None:
    path = tmp_path / "redis.conf"
    path.write_bytes(b"v1\n")
    first = local.write_file(
        str(path), b"v2\n", expected_sha256=hashlib.sha256(b"v1\n").hexdigest()
    )
    second = local.write_file(
        str(path), b"v3\n", expected_sha256=hashlib.sha256(b"v2\n").hexdigest()
    )

    assert first and second and first != second
    assert Path(first).read_bytes() == b"v1\n" and Path(second).read_bytes() == b"v2\n"


def test_a_new_file_without_a_mode_follows_the_umask(
    local: LocalConnection, tmp_path: Path
) -> None:
    path = tmp_path / "new.conf"
    local.write_file(str(path), b"x\n", expected_sha256=None)
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask


def test_an_unreadable_directory_is_an_error_not_a_missing_file(
    local: LocalConnection, tmp_path: Path
) -> None:
    if os.geteuid() == 0:
        scripted = Scripted(
            host(), lambda c, s: (1, "", "stat: cannot statx '/x': Permission denied\n")
        )
        with pytest.raises(CommandError, match="Permission denied"):
            scripted.read_file("/x")
        return
    locked = tmp_path / "locked"
    locked.mkdir(mode=0)
    try:
        with pytest.raises(CommandError, match="Permission denied"):
            local.read_file(str(locked / "redis.conf"))
    finally:
        locked.chmod(0o700)


def test_a_gather_script_reads_back_by_sections_and_host_output_cannot_forge_one() -> None:
    # Given a script whose sections start with marker_line, and a "log" that prints
    # something that looks like a marker, when it runs, then split_sections finds exactly
    # the script's own sections, each with its text.
    marker = new_marker()
    script = (
        marker_line(marker, "first")
        + "printf 'a\\nb\\n'\n"
        + marker_line(marker, "log")
        + "echo '@@redmedic-000000000000@@ forged'\n"
        + marker_line(marker, "empty")
    )
    output = subprocess.run(["sh", "-c", script], capture_output=True, text=True).stdout

    assert split_sections(output, marker) == {
        "first": "a\nb",
        "log": "@@redmedic-000000000000@@ forged",
        "empty": "",
    }
