"""redis.conf as Redis reads it, and edits that keep the file, against Debian's real file.

tests/data/redis.conf is a verbatim copy of /etc/redis/redis.conf from Debian 12's
redis-server 7.0.15 package: the file operators actually have. Each test is one thing an
operator relies on: "given this file, when I ask for X, then the file says Y and only Y".
"""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest

from redmedic.connection.base import RemoteFile
from redmedic.model.plan import FileChange
from redmedic.redis import redisconf
from redmedic.redis.configset import live_target
from redmedic.redis.redisconf import ConfError, Config, Value
from redmedic.safety.secrets import MASK, Masker
from redmedic.steps.redis_config import (
    RedisConfigArgs,
    discovery_script,
    live_findings,
    parse_bundle,
    parse_live,
    read_script,
)

DEBIAN = (Path(__file__).parents[1] / "data" / "redis.conf").read_text()
MAIN = "/etc/redis/redis.conf"


def debian(text: str = DEBIAN, **included: str) -> Config:
    """Debian's file (or `text`) as the main file, plus included files by path."""
    files = {MAIN: redisconf.parse(text, MAIN)}
    files.update({path: redisconf.parse(body, path) for path, body in included.items()})
    matches = {path: (path,) for path in included}
    return Config(MAIN, files, matches)


def changed_lines(before: str, after: str) -> list[str]:
    """The +/- lines of a diff, without headers: what an operator reviews."""
    diff = difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
    return [line for line in diff if line[:1] in "+-" and line[:3] not in ("---", "+++")]


def edit_main(values: dict[str, Value], remove: tuple[str, ...] = ()) -> str:
    return redisconf.edit(debian(), values, remove)[MAIN]


# -- reading -------------------------------------------------------------------------------


def test_debians_file_parses_without_errors_with_line_numbers() -> None:
    conf = redisconf.parse(DEBIAN, MAIN)
    assert conf.errors == ()
    by_name = {d.name: d for d in conf.directives}
    assert (by_name["bind"].args, by_name["bind"].line) == (("127.0.0.1", "-::1"), 87)
    assert (by_name["port"].value, by_name["port"].line) == ("6379", 138)
    assert by_name["proc-title-template"].args == ("{title} {listen-addr} {server-mode}",)
    assert by_name["notify-keyspace-events"].args == ("",)
    assert not any(d.name.startswith("#") for d in conf.directives)


def test_the_effective_debian_config_is_what_redis_reports() -> None:
    view = redisconf.facts_view(debian().effective())
    assert view["bind"] == "127.0.0.1 -::1"
    assert view["protected-mode"] == "yes"
    assert view["client-output-buffer-limit"] == [
        "normal 0 0 0",
        "replica 256mb 64mb 60",
        "pubsub 32mb 8mb 60",
    ]
    assert "requirepass" not in view and "save" not in view
    assert redisconf.has_password(debian().effective()) is False


def test_arguments_split_like_redis_does() -> None:
    line = r"""a "b c" 'it\'s' "\x41\x42\n\"q\"" "caf\xc3\xa9" '\n'"""
    assert redisconf.split_args(line) == ["a", "b c", "it's", 'AB\n"q"', "café", "\\n"]
    assert redisconf.split_args('x"y z"') == ["xy z"]  # a quote may open mid-word
    for bad in ['"open', "'open", '"closed"glued']:
        with pytest.raises(ValueError):
            redisconf.split_args(bad)


def test_an_unquoted_line_splits_on_c_whitespace_only_and_keeps_backslashes() -> None:
    # Outside quotes sdssplitargs escapes nothing and splits on isspace() of the C locale:
    # a no-break space or an undecodable byte (a surrogate here) is part of a word.
    line = "dir\v/var/lib\\redis\f x\u00a0y \udcff\t\r"
    assert redisconf.split_args(line) == ["dir", "/var/lib\\redis", "x\u00a0y", "\udcff"]


def test_comments_only_start_a_line_and_names_ignore_case() -> None:
    conf = redisconf.parse("  # bind 1.2.3.4\nPORT 6380\nbind 10.0.0.1 # lan\n\t\n", "/r")
    assert [(d.name, d.args, d.line) for d in conf.directives] == [
        ("port", ("6380",), 2),
        ("bind", ("10.0.0.1", "#", "lan"), 3),  # Redis has no trailing comments
    ]


def test_a_line_redis_refuses_is_reported_with_its_place() -> None:
    conf = redisconf.parse('port 6379\nrequirepass "unterminated\n', "/r")
    assert [str(e) for e in conf.errors] == ["/r:2: unbalanced quotes (Redis will not start)"]
    assert Config("/r", {"/r": conf}).notes() == [str(conf.errors[0])]


def test_the_last_occurrence_wins_across_includes_in_load_order() -> None:
    main = "port 1\ninclude /etc/redis/a.conf\nmaxclients 5\ninclude /etc/redis/b.conf\n"
    config = debian(
        main,
        **{"/etc/redis/a.conf": "port 2\nmaxclients 50\n", "/etc/redis/b.conf": "bind 10.0.0.1\n"},
    )
    eff = config.effective()
    assert eff["port"].value == "2" and eff["port"].sources[-1].where == "/etc/redis/a.conf:1"
    assert eff["maxclients"].value == "5"  # after the include line: the main file wins
    assert eff["bind"].value == "10.0.0.1"
    assert config.load_order() == [MAIN, "/etc/redis/a.conf", "/etc/redis/b.conf"]


def test_globs_load_in_order_missing_files_are_noted_and_loops_end() -> None:
    main = "include /etc/redis/conf.d/*.conf\ninclude /etc/redis/gone.conf\nport 1\n"
    files = {
        MAIN: redisconf.parse(main, MAIN),
        "/etc/redis/conf.d/10.conf": redisconf.parse("port 10\ninclude /etc/redis/redis.conf\n"),
        "/etc/redis/conf.d/20.conf": redisconf.parse("port 20\nmaxclients 7\n"),
    }
    files = {p: redisconf.ConfFile(p, f.text, f.directives) for p, f in files.items()}
    config = Config(
        MAIN,
        files,
        {
            "/etc/redis/conf.d/*.conf": ("/etc/redis/conf.d/10.conf", "/etc/redis/conf.d/20.conf"),
            "/etc/redis/gone.conf": (),
        },
    )
    assert config.effective()["maxclients"].value == "7"
    assert config.effective()["port"].value == "1"
    assert config.missing == ["/etc/redis/gone.conf"]
    assert "included file /etc/redis/gone.conf does not exist" in config.notes()[0]


def test_relative_includes_are_read_beside_the_file_and_say_so() -> None:
    assert redisconf.include_pattern("local.conf", MAIN) == "/etc/redis/local.conf"
    config = debian("include local.conf\n", **{"/etc/redis/local.conf": "port 7\n"})
    assert config.effective()["port"].value == "7"
    assert "relative include 'local.conf'" in config.notes()[0]


def test_save_lines_add_up_and_an_empty_save_clears_them() -> None:
    config = debian("save 3600 1\nsave 300 100\n")
    assert config.effective()["save"].value == "3600 1 300 100"
    config = debian('save 3600 1\nsave ""\nsave 60 10000\n')
    assert config.effective()["save"].value == "60 10000"
    assert debian('save ""\n').effective()["save"].value == ""


def test_secrets_are_masked_in_facts_and_listed_for_the_masker() -> None:
    text = 'requirepass "s3 cret"\nmasterauth up\nuser app on >apppw ~* +@all\nport 1\n'
    eff = debian(text).effective()
    view = redisconf.facts_view(eff)
    assert view["requirepass"] == MASK and view["masterauth"] == MASK
    assert view["user"] == [f"app on >{MASK} ~* +@all"]
    assert redisconf.has_password(eff) is True
    assert redisconf.secrets_in("user", ("app", ">apppw")) == ["apppw"]
    assert redisconf.has_password(debian('requirepass ""\n').effective()) is False


# -- editing Debian's file -----------------------------------------------------------------


def test_a_new_password_goes_under_debians_example_and_nothing_else_changes() -> None:
    after = edit_main({"requirepass": "s3cret"})
    assert changed_lines(DEBIAN, after) == ["+requirepass s3cret"]
    lines = after.splitlines()
    assert lines[1035:1037] == ["# requirepass foobared", "requirepass s3cret"]


def test_maxclients_and_maxmemory_go_under_their_examples_not_under_prose() -> None:
    lines = edit_main({"maxclients": 20000, "maxmemory": "1gb"}).splitlines()
    assert lines[1091:1093] == ["# maxclients 10000", "maxclients 20000"]
    assert lines[1119:1121] == ["# maxmemory <bytes>", "maxmemory 1gb"]


def test_bind_and_protected_mode_are_edited_in_place() -> None:
    after = edit_main({"bind": ["0.0.0.0", "-::*"], "protected-mode": False})
    assert changed_lines(DEBIAN, after) == [
        "-bind 127.0.0.1 -::1",
        "+bind 0.0.0.0 -::*",
        "-protected-mode yes",
        "+protected-mode no",
    ]
    assert after.splitlines()[86] == "bind 0.0.0.0 -::*"


def test_a_second_run_changes_nothing() -> None:
    wanted: dict[str, Value] = {
        "requirepass": "two words",
        "bind": "0.0.0.0 -::*",
        "maxmemory": "1gb",
        "protected-mode": "no",
        "save": "",
        "client-output-buffer-limit": "replica 512mb 128mb 60",
    }
    once = redisconf.edit(debian(), wanted, ("appendonly",))
    assert redisconf.edit(debian(once[MAIN]), wanted, ("appendonly",)) == {}


def test_values_that_mean_the_same_to_redis_are_left_alone() -> None:
    text = 'bind "127.0.0.1 -::1"\nmaxmemory 1gb\nprotected-mode YES\n'
    same: dict[str, Value] = {
        "bind": ["127.0.0.1", "-::1"],
        "maxmemory": 1073741824,
        "protected-mode": True,
    }
    assert redisconf.edit(debian(text), same) == {}
    assert redisconf.edit(debian("maxmemory 1g\n"), {"maxmemory": "1gb"})  # 10^9 != 2^30


def test_remove_deletes_every_occurrence_in_every_file() -> None:
    config = debian(
        "port 1\nrequirepass a\ninclude /etc/redis/x.conf\n",
        **{"/etc/redis/x.conf": "requirepass b\nmaxclients 3\n"},
    )
    texts = redisconf.edit(config, {}, ["requirepass"])
    assert texts == {
        MAIN: "port 1\ninclude /etc/redis/x.conf\n",
        "/etc/redis/x.conf": "maxclients 3\n",
    }
    assert redisconf.edit(debian(), {}, ["requirepass"]) == {}


def test_set_edits_the_file_whose_occurrence_is_in_force() -> None:
    config = debian(
        "maxclients 10\ninclude /etc/redis/local.conf\n",
        **{"/etc/redis/local.conf": "# site\n  maxclients 100\n"},
    )
    assert redisconf.edit(config, {"maxclients": 200}) == {
        "/etc/redis/local.conf": "# site\n  maxclients 200\n"
    }
    overridden = debian(
        "include /etc/redis/local.conf\nmaxclients 10\n",
        **{"/etc/redis/local.conf": "maxclients 100\n"},
    )
    assert redisconf.edit(overridden, {"maxclients": 200}) == {
        MAIN: "include /etc/redis/local.conf\nmaxclients 200\n"
    }


def test_without_an_example_the_directive_is_appended() -> None:
    assert redisconf.edit(debian("port 1"), {"maxclients": 5}) == {MAIN: "port 1\nmaxclients 5\n"}
    assert redisconf.edit(debian(""), {"port": 2}) == {MAIN: "port 2\n"}


def test_crlf_files_keep_their_line_endings() -> None:
    texts = redisconf.edit(debian("# maxclients 1\r\nport 1\r\n"), {"port": 2, "maxclients": 9})
    assert texts == {MAIN: "# maxclients 1\r\nmaxclients 9\r\nport 2\r\n"}


def test_save_collapses_to_one_line_and_keyed_directives_edit_their_key() -> None:
    texts = redisconf.edit(debian("save 1 1\nsave 2 2\n"), {"save": "60 100"})
    assert texts == {MAIN: "save 60 100\n"}
    assert redisconf.edit(debian("save 1 1\nsave 2 2\n"), {"save": "1 1 2 2"}) == {}
    text = "rename-command CONFIG x\nrename-command FLUSHALL y\n"
    texts = redisconf.edit(debian(text), {"rename-command": ["config", ""]})
    assert texts == {MAIN: 'rename-command config ""\nrename-command FLUSHALL y\n'}


@pytest.mark.parametrize(
    "value",
    ["plain", "two words", 'has"quote', "it's", "both'\"", "back\\slash", "", "tab\there", "é"],
)
def test_any_value_round_trips_through_the_file(value: str) -> None:
    after = redisconf.edit(debian("port 1\n"), {"masterauth": value})[MAIN]
    assert redisconf.parse(after).directives[-1].args == (value,)
    assert redisconf.edit(debian(after), {"masterauth": value}) == {}


def test_impossible_requests_are_refused() -> None:
    with pytest.raises(ConfError, match="both set and removed"):
        redisconf.edit(debian(), {"port": 1}, ["PORT"])
    with pytest.raises(ConfError, match="file_line"):
        redisconf.edit(debian(), {"include": "/x.conf"})
    with pytest.raises(ConfError, match="not a directive"):
        redisconf.edit(debian(), {"max clients": 1})
    with pytest.raises(ValueError, match="both set and removed"):
        RedisConfigArgs(set={"port": 1}, remove=["port"])


@pytest.mark.parametrize("password", ["s3cret", "two words", "it's", 'q"uote'])
def test_the_planned_diff_shows_no_password(password: str) -> None:
    after = edit_main({"requirepass": password, "masterauth": password})
    before = RemoteFile(MAIN, DEBIAN.encode(), 0o640, "redis", "redis")
    diff = FileChange(MAIN, before, after.encode()).diff()
    masker = Masker()
    for secret in (password, redisconf.format_arg(password)):  # what the step registers
        masker.add(secret)
    shown = masker.mask(diff)
    assert "+requirepass " + MASK in shown and "+masterauth " + MASK in shown
    assert password not in shown and redisconf.format_arg(password) not in shown
    # Even without the step's registration, the masker's own directive rule covers the
    # quoting we choose for these (bare, "double" or 'single' quotes, no escapes).
    assert password not in Masker().mask(diff)


# -- reading from a host: the bundle format and the running values -------------------------


def test_a_bundle_of_files_parses_back_into_exact_bytes() -> None:
    data = (
        b"redmedic:found ExecStart of redis-server\n"
        b"redmedic:file main 12 640 redis redis /etc/redis/my redis.conf\n"
        b"port 1\nbind\n"
        b"redmedic:absent i0 /etc/redis/gone.conf\n"
    )
    bundle = parse_bundle(data)
    assert bundle.found == "ExecStart of redis-server"
    main, gone = bundle.items
    assert main.file == RemoteFile(
        "/etc/redis/my redis.conf", b"port 1\nbind\n", 0o640, "redis", "redis"
    )
    assert (gone.tag, gone.path, gone.file) == ("i0", "/etc/redis/gone.conf", None)
    with pytest.raises(ValueError, match="changed while"):
        parse_bundle(b"redmedic:file main 99 640 r r /x\nshort")


def test_the_scripts_quote_what_they_are_given() -> None:
    assert "unit='my unit'" in discovery_script("my unit")
    script = read_script([("main", "/etc/it's.conf"), ("i0", "/etc/redis/conf d/*.conf")])
    assert "emit main '/etc/it'\"'\"'s.conf'" in script
    assert "for f in /etc/redis/conf\\ d/*.conf; do" in script


def test_running_values_are_compared_with_the_file() -> None:
    sections = {
        "maxmemory": "maxmemory\n1073741824",
        "bind": "bind\n0.0.0.0",
        "requirepass": "requirepass\nlive-secret",
    }
    running, error = parse_live(sections)
    assert error is None and running["bind"] == "0.0.0.0"
    eff = debian("maxmemory 1gb\nbind 127.0.0.1 -::1\nrequirepass file-secret\n").effective()
    findings = {f.cause: f for f in live_findings(running, eff)}
    assert set(findings) == {"bind", "config-drift"}
    assert "a restart would undo the live value" in findings["bind"].summary
    shown = repr(findings["config-drift"])
    assert "live-secret" not in shown and "file-secret" not in shown
    assert parse_live({"@error": "Redis does not answer at 127.0.0.1:6379: refused"}) == (
        {},
        "Redis does not answer at 127.0.0.1:6379: refused",
    )
    assert parse_live({"port": "NOAUTH Authentication required."}) == (
        {},
        "NOAUTH Authentication required.",
    )
    assert live_target(debian("port 6380\nbind -10.0.0.1 ::1\n").effective()) == [
        "-h", "10.0.0.1", "-p", "6380",
    ]  # fmt: skip
    assert live_target(debian("port 0\nunixsocket /run/r.sock\n").effective()) == [
        "-s",
        "/run/r.sock",
    ]
