"""`redmedic report FILE...`: the shards' `--output json` files as one summary and exit code.

Given the JSON-lines outputs of the shards of one run (apart or concatenated), when I run
`redmedic report` on them, then I get one table of every host and the exit code one run
over all of them would give; overlapping shards are an error, never a silent overwrite.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from redmedic.cli import main


def output(path: Path, hosts: dict[str, str]) -> Path:
    """A run's --output json file: run_started, one event, the summary."""
    lines = [
        {"event": "run_started", "playbook": "pb.yaml", "hosts": list(hosts), "check": False},
        {"event": "host_started", "host": next(iter(hosts), "")},
        {
            "event": "summary",
            "hosts": {
                name: {"status": status, "changed": int(status == "changed"), "failed": 0}
                for name, status in hosts.items()
            },
        },
    ]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def report(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["report", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_the_shards_make_one_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    one = output(tmp_path / "shard-1.jsonl", {"web-1": "changed", "web-3": "ok"})
    two = output(tmp_path / "shard-2.jsonl", {"web-2": "changed"})
    empty = output(tmp_path / "shard-3.jsonl", {})  # a shard a small fleet left empty

    code, out, _ = report(capsys, str(one), str(two), str(empty), "--output", "json")

    assert code == 0
    assert json.loads(out) == {
        "event": "summary",
        "hosts": {
            "web-1": {"status": "changed", "changed": 1, "failed": 0},
            "web-3": {"status": "ok", "changed": 0, "failed": 0},
            "web-2": {"status": "changed", "changed": 1, "failed": 0},
        },
    }
    code, out, _ = report(capsys, str(one), str(two), str(empty))
    assert out.startswith("Summary: 3 host(s) — 2 changed, 1 ok\n")
    assert [line.split()[0] for line in out.splitlines()[2:]] == ["web-1", "web-3", "web-2"]


def test_concatenated_outputs_are_the_same_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    one = output(tmp_path / "shard-1.jsonl", {"web-1": "changed"})
    two = output(tmp_path / "shard-2.jsonl", {"web-2": "ok"})
    both = tmp_path / "run.jsonl"
    both.write_text(one.read_text() + two.read_text())

    assert report(capsys, str(both)) == report(capsys, str(one), str(two))


@pytest.mark.parametrize(
    ("statuses", "code"),
    [
        (("ok", "would_change"), 0),
        (("ok", "unreachable"), 4),
        (("unreachable", "failed"), 1),
        (("changed", "declined"), 1),
        (("ok", "skipped"), 1),
    ],
)
def test_the_exit_code_is_one_runs_over_all_the_hosts(
    statuses: tuple[str, str], code: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    one = output(tmp_path / "shard-1.jsonl", {"web-1": statuses[0]})
    two = output(tmp_path / "shard-2.jsonl", {"web-2": statuses[1]})
    assert report(capsys, str(one), str(two))[0] == code


def test_a_host_in_two_shards_is_refused_with_both_places(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    one = output(tmp_path / "a.jsonl", {"web-1": "ok", "web-2": "ok"})
    two = output(tmp_path / "b.jsonl", {"web-2": "changed"})

    code, out, err = report(capsys, str(one), str(two))

    assert (code, out, err.count("\n")) == (2, "", 1)
    assert f"{two}:3: host 'web-2' is in two summaries (also at {one}:3)" in err


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"event": "run_started", "hosts": []}\n', "FILE: no summary line — pass the --output"),
        ('{"event": "summary", "hosts": {}}\nRun 2026 on 3 host(s)\n', "FILE:2: not a JSON line"),
    ],
)
def test_a_file_that_is_no_finished_json_run_is_one_line(
    text: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "out.jsonl"
    path.write_text(text)
    code, _, err = report(capsys, str(path))
    assert (code, err.count("\n")) == (2, 1)
    assert message.replace("FILE", str(path)) in err
