"""file_line edits as text in, text out: the Ansible lineinfile rules users rely on."""

import pytest

from redmedic.connection.base import RemoteFile
from redmedic.model.plan import FileChange
from redmedic.steps import PlanError
from redmedic.steps.file_line import FileLine, FileLineArgs, FileNow, edit_lines

CONF = "# Redis\nbind 127.0.0.1 -::1\nport 6379\n"


def edit(text: str, **kwargs: object) -> str:
    return edit_lines(text, FileLineArgs(path="/x", **kwargs))  # type: ignore[arg-type]


def test_regexp_replaces_the_matching_line_in_place() -> None:
    assert edit(CONF, regexp="^bind ", line="bind 0.0.0.0") == "# Redis\nbind 0.0.0.0\nport 6379\n"


def test_an_already_correct_line_changes_nothing() -> None:
    assert edit(CONF, regexp="^port ", line="port 6379") == CONF


def test_only_the_last_match_is_replaced() -> None:
    text = "port 1\nport 2\n"
    assert edit(text, regexp="^port ", line="port 3") == "port 1\nport 3\n"


def test_no_match_appends_at_the_end_or_after_a_pattern() -> None:
    assert edit(CONF, regexp="^maxclients ", line="maxclients 100").endswith(
        "port 6379\nmaxclients 100\n"
    )
    out = edit(CONF, regexp="^maxclients ", line="maxclients 100", insertafter="^bind ")
    assert out == "# Redis\nbind 127.0.0.1 -::1\nmaxclients 100\nport 6379\n"
    assert edit(CONF, line="x", insertbefore="BOF").startswith("x\n# Redis")


def test_absent_removes_every_matching_line() -> None:
    assert edit(CONF, regexp="^bind ", state="absent") == "# Redis\nport 6379\n"
    assert edit(CONF, regexp="^nothing", state="absent") == CONF


def test_a_missing_final_newline_is_added_before_appending() -> None:
    assert edit("a\nb", line="c") == "a\nb\nc\n"


# -- the step: the file as found in, changes out ------------------------------------------

BIND = FileLineArgs(path="/etc/redis/redis.conf", regexp="^bind ", line="bind 0.0.0.0")
FOUND = RemoteFile("/etc/redis/redis.conf", CONF.encode(), 0o640, "redis", "redis")


def test_the_step_plans_one_file_change_from_the_file_it_found() -> None:
    [change] = FileLine().plan(BIND, FileNow(FOUND, become=True))
    assert isinstance(change, FileChange) and change.before == FOUND and change.become
    assert change.after == b"# Redis\nbind 0.0.0.0\nport 6379\n"
    assert (
        FileLine().plan(
            BIND.model_copy(update={"line": "bind 127.0.0.1 -::1"}), FileNow(FOUND, False)
        )
        == []
    )


def test_a_missing_file_is_created_only_when_asked() -> None:
    with pytest.raises(PlanError, match="does not exist — set `create: true`"):
        FileLine().plan(BIND, FileNow(None, become=False))
    create = FileLineArgs(path=FOUND.path, line="bind 0.0.0.0", create=True, mode="0640")
    [change] = FileLine().plan(create, FileNow(None, become=False))
    assert isinstance(change, FileChange) and change.mode == 0o640 and change.before is None
    gone = FileLineArgs(path="/etc/redis/redis.conf", regexp="^bind ", state="absent")
    assert FileLine().plan(gone, FileNow(None, False)) == []  # absent already


def test_arguments_that_cannot_work_are_refused_when_validated() -> None:
    with pytest.raises(ValueError, match="state=present needs `line`"):
        FileLineArgs(path="/a", regexp="^bind ")
    with pytest.raises(ValueError, match="state=absent needs `regexp` or `line`"):
        FileLineArgs(path="/a", state="absent")
