"""Live first, saved too: what the redis_config step plans from what the host said.

The plan is pure: the configuration as read and the running Redis's answer (its values and
version, or why it could not be asked) go in, changes come out. These tests are the rules a
user relies on when reading a plan: a change marked "live, no restart" really is made on the
running server too (a CONFIG SET with its check, its undo and its precondition), and a
change Redis cannot take while running says so, and why.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from redmedic.connection.base import RemoteFile
from redmedic.model.plan import LIVE, CommandChange, FileChange, restart_needed, takes_effect_live
from redmedic.redis import live, redisconf
from redmedic.redis.configset import Endpoint, every_pairing, set_script, state_script, state_text
from redmedic.steps.redis_config import (
    LiveRead,
    LoadedConfig,
    RedisConfigArgs,
    open_files_limit,
    parse_live,
    plan_changes,
    running_version,
)

MAIN = "/etc/redis/redis.conf"
DEBIAN = (Path(__file__).parents[1] / "data" / "redis.conf").read_text()
HERE = Endpoint(("-h", "127.0.0.1", "-p", "6379"))
SECRET = "n3w 'pass\"word"


def loaded(text: str = DEBIAN) -> LoadedConfig:
    config = redisconf.Config(MAIN, {MAIN: redisconf.parse(text, MAIN)})
    remote = {MAIN: RemoteFile(MAIN, text.encode(), 0o640, "redis", "redis")}
    return LoadedConfig(config, remote, "path argument", (), config)


def plan(
    running: LiveRead | None, text: str = DEBIAN, **args: object
) -> list[FileChange | CommandChange]:
    conf = loaded(text)
    step_args = RedisConfigArgs.model_validate({"path": MAIN, **args})
    texts = redisconf.edit(conf.config, step_args.set, step_args.remove)
    return plan_changes(step_args, conf, texts, running, True)  # type: ignore[return-value]


def answer(version: str | None, **values: str) -> LiveRead:
    return LiveRead(values, live.parse_version(version), None, (HERE,))


# -- live where the version takes it --------------------------------------------------------


def test_redis_7_takes_bind_live_the_edit_and_the_config_set_are_both_live() -> None:
    changes = plan(answer("7.0.15", bind="127.0.0.1 -::1"), set={"bind": "0.0.0.0 -::*"})
    edit, command = changes
    assert isinstance(edit, FileChange) and edit.effect == LIVE
    assert isinstance(command, CommandChange) and command.effect == LIVE
    assert all(takes_effect_live(c) for c in changes)  # so no restart handler runs
    assert command.command.startswith("# CONFIG SET bind 0.0.0.0 -::* on the running Redis")
    assert 'CONFIG SET bind "0.0.0.0 -::*"\nECHO @gets\nCONFIG GET bind\n' in command.command
    assert command.undo_command is not None
    assert 'CONFIG SET bind "127.0.0.1 -::1"\n' in command.undo_command
    assert command.precondition is not None
    assert command.precondition[1] == "bind 127.0.0.1 -::1\n"  # the running value, as read


def test_redis_6_0_cannot_change_bind_live_the_edit_needs_a_restart_and_says_why() -> None:
    (edit,) = plan(answer("6.0.16", bind="127.0.0.1 -::1"), set={"bind": "0.0.0.0"})
    assert isinstance(edit, FileChange)
    assert edit.effect == restart_needed(
        "Redis 6.0.16 cannot change `bind` while running (CONFIG SET takes it from 6.2.1)"
    )
    assert not takes_effect_live(edit)  # the step's notify (the restart) fires


def test_on_redis_6_0_maxclients_is_still_live() -> None:
    changes = plan(answer("6.0.16", maxclients="2"), set={"maxclients": 10000})
    assert [c.effect for c in changes] == [LIVE, LIVE]


def test_maxclients_beyond_the_processs_open_file_limit_waits_for_the_restart() -> None:
    """Redis refuses CONFIG SET maxclients past its hard limit: the new limit (a drop-in)
    and the new maxclients both arrive with the restart."""
    low = LiveRead({"maxclients": "2"}, (7, 0, 15), None, (HERE,), open_files=40)
    (edit,) = plan(low, set={"maxclients": 10000})
    assert edit.effect == restart_needed(
        "the running process may open 40 files and maxclients 10000 needs 10032: "
        "its open-file limit changes when it starts"
    )
    enough = LiveRead({"maxclients": "2"}, (7, 0, 15), None, (HERE,), open_files=65535)
    assert [c.effect for c in plan(enough, set={"maxclients": 10000})] == [LIVE, LIVE]


def test_a_redis_that_is_not_running_gets_the_edit_and_a_restart() -> None:
    down = LiveRead(
        {}, None, "Could not connect to Redis at 127.0.0.1:6379: Connection refused", (HERE,)
    )
    (edit,) = plan(down, set={"port": 6380})
    assert edit.effect == restart_needed(
        "Redis could not be asked (Could not connect to Redis at 127.0.0.1:6379: "
        "Connection refused)"
    )


def test_live_false_edits_the_file_only() -> None:
    (edit,) = plan(None, set={"maxclients": 10000}, live=False)
    assert edit.effect == restart_needed("`live: false`, redis.conf only")


def test_a_removed_directive_needs_a_restart() -> None:
    (edit,) = plan(None, remove=["maxmemory"], text="maxmemory 1gb\n")
    assert edit.effect is not None and "comes back only when Redis starts" in edit.effect


def test_a_value_already_right_in_both_layers_plans_nothing() -> None:
    assert plan(answer("7.0.15", maxclients="10000"), text="maxclients 10000\n",
                set={"maxclients": 10000}) == []  # fmt: skip


def test_drift_of_the_running_value_alone_is_set_back_live_without_touching_the_file() -> None:
    (command,) = plan(answer("7.0.15", maxclients="50"), text="maxclients 100\n",
                      set={"maxclients": 100})  # fmt: skip
    assert isinstance(command, CommandChange) and command.effect == LIVE


def test_the_file_already_right_and_redis_running_it_needs_no_command() -> None:
    """Someone ran CONFIG SET already: the file edit alone, and it is live (Redis has it)."""
    (edit,) = plan(answer("7.0.15", maxmemory="104857600"), set={"maxmemory": "100mb"})
    assert isinstance(edit, FileChange) and edit.effect == LIVE


def test_requirepass_is_set_last_in_the_session() -> None:
    """After it, the session stays authenticated: the CONFIG GETs that follow prove it.
    (That the password stays off every command line is proven with a real Redis in
    tests/integration/test_redis_config_step.py.)"""
    changes = plan(
        answer("7.0.15", requirepass="", port="6380"), set={"requirepass": SECRET, "port": 6379}
    )
    command = changes[-1]
    assert isinstance(command, CommandChange)
    session = command.command.split("<<'REDMEDIC_END'\n", 1)[1].split("REDMEDIC_END\n", 1)[0]
    assert session.splitlines()[:3] == [
        "CONFIG SET port 6379",
        f"CONFIG SET requirepass {redisconf.format_arg(SECRET)}",
        "ECHO @gets",
    ]


# -- the shell's parts, read back --------------------------------------------------------------


def test_the_live_read_gives_values_version_or_why_not() -> None:
    sections = {
        "maxclients": "maxclients\n10000",
        "@version": "# Server\r\nredis_version:7.0.15\r\nredis_mode:standalone\r",
    }
    assert parse_live(sections) == ({"maxclients": "10000"}, None)
    assert running_version(sections) == (7, 0, 15)
    limits = "Max open files            1024                 40                   files"
    assert open_files_limit({"@limits": limits}) == 40
    assert open_files_limit({"@limits": limits.replace(" 40 ", " unlimited ")}) is None
    assert open_files_limit({}) is None
    assert running_version({}) is None
    assert parse_live({"@error": "redis-cli is not installed"}) == (
        {},
        "redis-cli is not installed",
    )


def test_the_precondition_text_hides_a_secret_value() -> None:
    running = {"requirepass": "old-secret", "port": "6379"}
    assert state_text(running, ["port", "requirepass"]) == "port 6379\nrequirepass as planned\n"
    script = state_script([HERE], running, ["port", "requirepass"])
    assert "echo requirepass as planned; else echo requirepass changed" in script


def test_a_half_applied_session_is_set_back_wherever_redis_answers_now() -> None:
    after = Endpoint(("-h", "127.0.0.1", "-p", "6380"), "new")
    before = Endpoint(("-h", "127.0.0.1", "-p", "6379"), "")
    pairs = every_pairing(after, before)
    assert [(e.args[3], e.password) for e in pairs] == [
        ("6380", "new"), ("6380", ""), ("6379", "new"), ("6379", ""),
    ]  # fmt: skip
    script = set_script("t", [before], [("port", "6380")], back=[("port", "6379")], back_at=pairs)
    assert "[ \"$(got 2)\" = 6380 ] && r='CONFIG SET port 6379'" in script
    assert "exit 1\n" in script


# -- redis/live.py ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("directive", "version", "live_ok"),
    [
        ("bind", "6.0.16", False),
        ("bind", "6.2.0", False),
        ("bind", "6.2.1", True),
        ("port", "7.0.15", True),
        ("tls-port", "6.0.16", False),
        ("requirepass", "6.0.16", True),
        ("protected-mode", "3.0.7", False),
        ("protected-mode", "7.0.15", True),
        ("maxmemory-policy", "7.0.15", True),
        ("daemonize", "7.0.15", False),  # not in the table: never claimed live
    ],
)
def test_what_redis_takes_live_by_version(directive: str, version: str, live_ok: bool) -> None:
    assert (live.restart_reason(directive, live.parse_version(version)) is None) is live_ok


def test_an_unknown_version_needs_a_restart() -> None:
    assert live.restart_reason("maxclients", None) == (
        "the running Redis's version is unknown (is it running?)"
    )
    assert live.parse_version("garbage") is None
    assert live.parse_version("7.2") == (7, 2, 0)


def test_values_run_in_the_form_config_get_prints() -> None:
    assert live.running_form("maxmemory", ["100mb"]) == "104857600"
    assert live.running_form("bind", ["0.0.0.0", "-::*"]) == "0.0.0.0 -::*"
    assert live.running_form("bind", ["0.0.0.0  -::*"]) == "0.0.0.0 -::*"
    assert live.running_form("protected-mode", ["YES"]) == "yes"
    assert live.running_form("maxmemory-policy", ["allkeys-LRU"]) == "allkeys-lru"
    assert live.running_form("requirepass", ["a  b"]) == "a  b"  # a password is never split
    assert live.running_form("port", ["6379"]) == "6379"
