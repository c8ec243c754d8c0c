"""A host's output is data, never an instruction: bytes that are not UTF-8 and terminal
escapes reach the audit log, `--output json` and the screen safely, and a flood is capped."""

from __future__ import annotations

import io
import json
import logging
import tracemalloc
from pathlib import Path

import pytest
from rich.console import Console

from redmedic.connection.base import CommandTimeout
from redmedic.connection.local import LocalConnection
from redmedic.connection.outputcap import OUTPUT_CAP, OutputCap
from redmedic.connection.sshopen import PARAMIKO_LOGGER
from redmedic.errors import CommandError
from redmedic.events import (
    ChangeApplied,
    ChangePlanned,
    ConfirmRequest,
    HostFinished,
    RunStarted,
    StepDone,
)
from redmedic.model.inventory import Host
from redmedic.report.console import ConsolePrompt, ConsoleReporter
from redmedic.report.jsonl import JsonLinesReporter
from redmedic.report.sshlog import ssh_conversation
from redmedic.report.visible import visible
from redmedic.safety.audit import AuditLog, read_run
from redmedic.safety.secrets import Masker

DATA = Path(__file__).parent.parent / "data" / "adversarial"
BYTES = (DATA / "output-bytes.bin").read_bytes()
ESCAPES = (DATA / "output-escapes.bin").read_bytes()


def _host_text(raw: bytes) -> str:
    """What a connection makes of a host's bytes (see `CommandResult`)."""
    return raw.decode("utf-8", "surrogateescape")


def _events(raw: bytes) -> list[object]:
    text = _host_text(raw)
    return [
        RunStarted("pb.yml", ("web1",), False, run_id="r1"),
        StepDone("web1", "diagnose", "probe", "ok", detail=text, output=text),
        ChangeApplied("web1", "remediate", "fix", text, change={"command": text}, diff=text),
        HostFinished("web1", "changed", 1, 0, message=text),
    ]


def test_the_audit_log_keeps_every_record_of_a_run_whose_host_printed_non_utf8(
    tmp_path: Path,
) -> None:
    # Given a host whose output holds bytes that are not UTF-8, when a run's events carry
    # it, then the audit log takes every record (none raises mid-run), every line is valid
    # UTF-8 JSON, and reading the run back gives the host's exact bytes.
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, "r1", b"salt")
    for event in _events(BYTES):
        log(event)  # type: ignore[arg-type]
    log.close()
    lines = path.read_bytes().decode("utf-8").splitlines()  # strict: raises on bad bytes
    assert [json.loads(line)["event"] for line in lines] == [
        "run_started",
        "change_applied",
        "host_finished",
    ]
    records, _ = read_run(path, "r1")
    applied = records[1]
    assert applied["change"]["command"].encode("utf-8", "surrogateescape") == BYTES
    assert "café" not in applied["diff"]  # \xe9 alone is not UTF-8: kept as the byte, not guessed


def test_output_json_is_valid_json_on_every_line_and_loses_nothing() -> None:
    stream = io.StringIO()
    reporter = JsonLinesReporter(stream)
    for event in _events(BYTES + ESCAPES):
        reporter(event)  # type: ignore[arg-type]
    raw = stream.getvalue().encode("utf-8")  # strict: a lone surrogate would raise here
    records = [json.loads(line) for line in raw.decode("utf-8").splitlines()]
    assert records[1]["output"].encode("utf-8", "surrogateescape") == BYTES + ESCAPES


def _screen(render: object) -> str:
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=200, highlight=False)
    if callable(render):
        render(console)
    return out.getvalue()


def test_terminal_escapes_from_a_host_never_reach_the_screen_raw() -> None:
    # Given a host that prints escapes to set the title, clear the screen, move up and
    # erase lines (and C1 controls, NUL, backspace, DEL), when the console shows its output
    # with -v, then no control character reaches the terminal: each shows as an escape.
    def render(console: Console) -> None:
        reporter = ConsoleReporter(console, verbose=True)
        for event in _events(ESCAPES):
            reporter(event)  # type: ignore[arg-type]

    screen = _screen(render)
    assert not [c for c in screen if (ord(c) < 32 and c not in "\n\t") or 0x7F <= ord(c) < 0xA0]
    assert "before\\x1b]0;owned title\\x07\\x1b[2J" in screen
    assert "\\x9b31m" in screen and "\\x00\\x08\\x7f after" in screen


def test_a_gate_shows_the_diff_as_it_is_whatever_the_host_printed_into_it() -> None:
    planned = ChangePlanned("web1", "remediate", "fix", "command", _host_text(ESCAPES), "+x\n")
    request = ConfirmRequest("web1", "fix", _host_text(ESCAPES), (planned,))

    def render(console: Console) -> None:
        ConsolePrompt(ConsoleReporter(console), io.StringIO("n\n"))(request)

    screen = _screen(render)
    assert "\x1b" not in screen and "\r" not in screen
    assert screen.count("\\x1b[1A") == 2


def test_the_vvv_ssh_log_shows_escapes_visibly(capsys: pytest.CaptureFixture[str]) -> None:
    with ssh_conversation(Masker()):
        logging.getLogger(f"{PARAMIKO_LOGGER}.web1").debug("banner: %s", _host_text(ESCAPES))
    err = capsys.readouterr().err
    assert "\x1b" not in err and "ssh web1: banner: before\\x1b]0;owned title" in err


def test_a_cut_says_how_much_and_keeps_the_head_and_the_tail() -> None:
    cap = OutputCap(cap=10)
    for chunk in (b"HEAD", b"ab", b"middle-" * 3, b"-TAIL"):
        cap.add(chunk)
    assert cap.value() == (
        b"HEADa\n[redmedic: 22 bytes of output cut here; the first and last 5 bytes are kept]\n"
        b"-TAIL"
    )
    small = OutputCap(cap=10)
    small.add(b"0123456789")
    assert small.value() == b"0123456789"


def test_a_command_printing_50_mb_keeps_a_few_mib_of_memory() -> None:
    # Given a local host, when a command prints 50 MB, then the result keeps the head and
    # the tail (the cut said plainly) and the run's peak memory stays a small multiple of
    # the cap, not of the output.
    conn = LocalConnection(Host("local", "127.0.0.1", connection="local"))
    tracemalloc.start()
    try:
        result = conn.run("head -c 50000000 /dev/zero | tr '\\0' x")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.ok
    assert f"[redmedic: {50_000_000 - OUTPUT_CAP} bytes of output cut here" in result.stdout
    assert len(result.stdout) < OUTPUT_CAP + 200
    assert peak < 5 * OUTPUT_CAP, f"peak {peak / 2**20:.0f} MiB"


def test_a_file_larger_than_redmedic_reads_is_refused_not_cut(tmp_path: Path) -> None:
    big = tmp_path / "redis.conf"
    big.write_bytes(b"# padding\n" * 500_000)  # 5 MB
    conn = LocalConnection(Host("local", "127.0.0.1", connection="local"))
    with pytest.raises(CommandError, match=r"5000000 bytes, larger than redmedic reads \(4 MiB\)"):
        conn.read_file(str(big))


def test_capped_local_commands_still_take_stdin_and_keep_their_timeout() -> None:
    # Given the threads that now read a local command's output, when a command echoes 3 MB
    # of stdin, ignores its stdin, or leaves a child holding its pipes past the timeout,
    # then the bytes come back whole, nothing hangs, and the timeout still fails it.
    conn = LocalConnection(Host("local", "127.0.0.1", connection="local"))
    data = bytes(range(256)) * 12_000
    assert conn.run("cat", stdin=data).stdout.encode("utf-8", "surrogateescape") == data
    assert conn.run("true", stdin=data).ok
    with pytest.raises(CommandTimeout):
        conn.run("sleep 60 & echo started", timeout=1.0)


def test_bidi_overrides_cannot_reorder_what_a_line_shows() -> None:
    text = _host_text((DATA / "output-bidi.bin").read_bytes())
    shown = visible(text)
    assert shown == "port 6379 \\u202e# 0.0.0.0 bind\\u202c\n"


def test_rollback_reads_an_audit_log_with_a_raw_non_utf8_line(tmp_path: Path) -> None:
    # Given an audit log some older writer left with raw bytes in a line, when rollback reads
    # the run, then that line and the others are read, not a UnicodeDecodeError.
    path = tmp_path / "audit.jsonl"
    path.write_bytes(
        b'{"run_id": "r1", "event": "run_started"}\n'
        b'{"run_id": "r1", "event": "host_finished", "message": "\xff"}\n'
    )
    records, _ = read_run(path, "r1")
    assert [r["event"] for r in records] == ["run_started", "host_finished"]


def test_output_json_on_a_latin1_stdout_is_still_whole_json() -> None:
    # Given a stdout that is not UTF-8 (LANG=de_DE.ISO-8859-1), when events carry "—", "✓"
    # and a host's undecodable bytes, then each line is written whole and parses back.
    buffer = io.BytesIO()
    stream = io.TextIOWrapper(buffer, encoding="latin-1")
    reporter = JsonLinesReporter(stream)
    for event in _events("✓ — ".encode() + BYTES):
        reporter(event)  # type: ignore[arg-type]
    stream.flush()
    records = [json.loads(line) for line in buffer.getvalue().decode("ascii").splitlines()]
    assert records[1]["output"].encode("utf-8", "surrogateescape") == "✓ — ".encode() + BYTES
