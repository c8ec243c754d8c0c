"""One change record and one undo: each change kind's `to_data`/`from_data`, and the undo
both the in-run rollback and `redmedic rollback` apply (scripted host, see redmedic.testing)."""

from __future__ import annotations

import dataclasses
import json

import pytest

from redmedic.errors import DriftError, UsageError
from redmedic.model.plan import (
    Change,
    CommandChange,
    FileChange,
    RestoreChange,
    change_from_data,
)
from redmedic.model.remote import RemoteFile
from redmedic.run.rollback import undo_steps
from redmedic.safety.apply import Applied, apply, undo
from redmedic.safety.secrets import Masker
from redmedic.testing import ScriptedConnection

PASSWORD = "s3cret-pass"
SALT = b"0123456789abcdef"
BEFORE = RemoteFile("/etc/redis/redis.conf", b"bind 127.0.0.1\n", 0o640, "redis", "redis")
EDIT = FileChange(BEFORE.path, BEFORE, b"bind 0.0.0.0\nrequirepass s3cret-pass\n", become=True)
CHANGES: list[Change] = [
    EDIT,
    FileChange("/etc/redis/new.conf", None, b"port 6380\n", mode=0o600),
    CommandChange(
        f"redis-cli -a {PASSWORD} config set maxclients 100",
        become=True,
        undo_command=f"redis-cli -a {PASSWORD} config set maxclients 10",
        precondition=("redis-cli config get maxclients", "maxclients\n10\n"),
    ),
    CommandChange("systemctl restart redis-server"),
    RestoreChange(BEFORE.path, f"{BEFORE.path}.bak", EDIT.after_sha256, become=True),
    RestoreChange("/etc/redis/new.conf", None, "ab" * 32),
]


def on_host(path: str, become: bool) -> RemoteFile | None:
    """The host as it was planned on: redis.conf as read, nothing else."""
    return BEFORE if path == BEFORE.path else None


@pytest.mark.parametrize("change", CHANGES, ids=lambda c: f"{c.kind}:{c.describe()}")
def test_every_change_kind_comes_back_from_its_record_as_it_was(change: Change) -> None:
    data = json.loads(json.dumps(change.to_data()))  # what a plan file or the audit log keeps
    assert data["kind"] == change.kind
    assert change_from_data(data, read=on_host) == change
    assert type(change).from_data(data, read=on_host) == change


@pytest.mark.parametrize("change", CHANGES, ids=lambda c: f"{c.kind}:{c.describe()}")
def test_a_sealed_record_shows_no_secret_and_unseals_to_the_same_change(change: Change) -> None:
    masker = Masker([PASSWORD])
    data = change.to_data(lambda t: masker.seal(t, SALT), masker.mask)
    assert PASSWORD not in json.dumps(data)
    assert change_from_data(data, lambda t: masker.unseal(t, SALT), on_host) == change


def test_a_saved_file_change_on_a_file_edited_since_is_refused() -> None:
    data = EDIT.to_data()
    edited = RemoteFile(BEFORE.path, b"bind 10.0.0.1\n", 0o640, "redis", "redis")
    with pytest.raises(ValueError, match="changed since the plan was made"):
        change_from_data(data, read=lambda path, become: edited)


def test_the_record_of_an_applied_change_keeps_what_identifies_it_not_its_content() -> None:
    data = EDIT.to_data(applied=True)
    assert "after" not in data and "diff" not in data
    assert data["after_sha256"] == EDIT.after_sha256
    with pytest.raises(ValueError, match="keeps no content to write"):
        change_from_data(data, read=on_host)
    command = CHANGES[2]
    assert isinstance(command, CommandChange)
    handler = change_from_data(command.to_data(applied=True))  # what rollback runs again
    assert handler == dataclasses.replace(command, precondition=None)


def test_an_unknown_or_malformed_record_is_a_one_line_error() -> None:
    with pytest.raises(ValueError, match="unknown change kind 'template'"):
        change_from_data({"kind": "template"})
    with pytest.raises(ValueError, match="malformed command change"):
        change_from_data({"kind": "command"})


def read_reply(content: bytes) -> tuple[int, str, str]:
    """What our read script prints for a file holding `content`."""
    return 0, "redmedic:file\n640 redis redis\n" + content.decode(), ""


OWN = FileChange(BEFORE.path, BEFORE, EDIT.after)  # as the login user: no sudo probe


def test_undo_puts_the_backup_back_when_the_file_still_holds_what_was_written() -> None:
    conn = ScriptedConnection({"redmedic:file": read_reply(EDIT.after), "bk=": (0, "", "")})
    undo(conn, Applied(OWN, backup=f"{BEFORE.path}.bak"))
    assert len(conn.commands) == 2 and "bk=/etc/redis/redis.conf.bak" in conn.commands[1]


def test_undo_leaves_a_file_changed_since_alone_and_says_where_the_backup_is() -> None:
    conn = ScriptedConnection({"redmedic:file": read_reply(b"edited by hand\n")})
    with pytest.raises(DriftError, match=r"changed since the run.*still at .*redis.conf.bak"):
        undo(conn, Applied(OWN, backup=f"{BEFORE.path}.bak"))
    assert len(conn.commands) == 1  # read, never restored


def test_undo_removes_a_created_file_only_while_it_is_what_was_created() -> None:
    created = FileChange("/etc/redis/new.conf", None, b"port 6380\n")
    conn = ScriptedConnection({"redmedic:file": read_reply(b"port 6380\n"), "rm -f": (0, "", "")})
    undo(conn, Applied(created, backup=None))
    assert "rm -f" in conn.commands[-1]


def test_undo_of_a_command_runs_its_undo_command_and_nothing_for_one_without() -> None:
    conn = ScriptedConnection({"systemctl stop": (0, "", "")})
    start = CommandChange("systemctl start redis", undo_command="systemctl stop redis")
    undo(conn, apply(ScriptedConnection({"systemctl start": (0, "", "")}), start))
    undo(conn, Applied(CommandChange("systemctl restart redis")))
    assert conn.commands == ["systemctl stop redis"]


def test_the_undo_the_audit_log_records_is_the_undo_the_run_makes() -> None:
    applied = Applied(EDIT, backup=f"{BEFORE.path}.bak")
    assert applied.reverse is not None
    recorded = change_from_data(json.loads(json.dumps(applied.reverse.to_data())))
    assert (
        recorded
        == applied.reverse
        == RestoreChange(BEFORE.path, f"{BEFORE.path}.bak", EDIT.after_sha256, become=True)
    )


def test_an_audit_log_written_by_an_older_redmedic_is_a_one_line_error() -> None:
    old = {"event": "change_applied", "run_id": "r1", "host": "h1", "change_id": "h1#1",
           "phase": "fix", "description": "edit /etc/redis/redis.conf", "kind": "file",
           "path": "/etc/redis/redis.conf", "backup": "/etc/redis/redis.conf.bak"}  # fmt: skip
    with pytest.raises(UsageError, match="recorded by an older redmedic") as raised:
        undo_steps([old], [], "audit.jsonl")
    assert raised.value.where == "audit.jsonl"
