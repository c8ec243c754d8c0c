"""file_line edits as text in, text out: the Ansible lineinfile rules users rely on."""

from redmedic.steps.file_line import FileLineArgs, edit_lines

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
