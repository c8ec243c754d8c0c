"""What a restart costs and when it is refused, from INFO texts captured on Redis 7.0.15.

Given what the running server answered (tests/data/redis-info/: RDB with keys written since
the last save on a primary with one replica, persistence off with keys, AOF on), when the
`redis_restart` step plans, then the plan's first line states the cost, RDB saves first,
persistence off with keys is refused in one line naming `redis_allow_data_loss` (unless
allowed), and a primary with replicas asks its own question.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from redmedic.connection.scripts import split_sections
from redmedic.model.plan import CommandChange
from redmedic.redis.facts import parse_info
from redmedic.redis.restart_guard import RestartCost
from redmedic.redis.restart_script import Running, Server, parse_ask
from redmedic.steps.base import PlanError
from redmedic.steps.redis_restart import RedisRestart, RedisRestartArgs, RestartFound

DATA = Path(__file__).resolve().parents[1] / "data" / "redis-info"
RDB_SAVE = "3600 1 300 100 60 10000"
HERE = Server(("-h", "127.0.0.1", "-p", "6379"), "s3cret")
STEP = RedisRestart()


def info(name: str) -> dict[str, object]:
    return parse_info((DATA / f"{name}.txt").read_text())


def found(
    name: str | None,
    save: str = RDB_SAVE,
    *,
    pid: int | None = 812,
    error: str = "",
    persisted_by_config: bool = True,
) -> RestartFound:
    """The step's diagnose value for a server that answered with the captured INFO `name`
    (None: it did not answer)."""
    answered = info(name) if name else {}
    running = Running("systemd", pid, HERE if name else None, answered, save, error)
    return RestartFound(
        unit="redis-server.service",
        running=running,
        after=HERE,
        cost=RestartCost.from_info(answered, save) if name else None,
        persisted_by_config=persisted_by_config,
        replicas=("127.0.0.1:16392",) if name == "rdb-primary-with-replica" else (),
        become=True,
    )


def planned(value: RestartFound, **args: object) -> CommandChange:
    changes = STEP.plan(RedisRestartArgs.model_validate(args), value)
    assert len(changes) == 1 and isinstance(changes[0], CommandChange)
    return changes[0]


def test_the_cost_is_read_from_the_running_servers_info() -> None:
    primary = RestartCost.from_info(info("rdb-primary-with-replica"), RDB_SAVE)
    assert (primary.keys, primary.expires, primary.clients) == (121, 1, 0)
    assert primary.needs_bgsave and primary.primary_with_replicas and primary.replicas == 1
    off = RestartCost.from_info(info("persistence-off"), "")
    assert (off.keys, off.persistent, off.needs_bgsave) == (50, False, False)
    aof = RestartCost.from_info(info("aof"), "")
    assert aof.persistent and aof.aof and not aof.needs_bgsave


def test_with_rdb_the_plan_states_the_cost_first_and_saves_before_restarting() -> None:
    change = planned(found("rdb-primary-with-replica"))
    headline = change.describe().splitlines()[0]
    assert headline == (
        "# redmedic: restart redis-server.service — drops 0 connected clients, 121 keys "
        "(234.5 KiB) reloaded, RDB (121 changes since the last save; BGSAVE first), "
        "primary with 1 connected replicas"
    )
    assert "\nbgsave=1\n" in change.command and "\ncount=1\n" in change.command
    assert "systemctl reset-failed redis-server 2>/dev/null; systemctl restart" in change.command
    assert change.undo_command is None  # a restart is not undone


def test_persistence_off_with_keys_is_refused_in_one_line_naming_the_variable() -> None:
    with pytest.raises(PlanError) as refused:
        planned(found("persistence-off", ""))
    why = str(refused.value)
    assert "\n" not in why
    assert why.startswith("a restart would lose all 50 keys")
    assert "redis_allow_data_loss=true" in why


def test_the_loss_allowed_by_name_restarts_without_saving_or_counting() -> None:
    change = planned(found("persistence-off", ""), allow_data_loss=True)
    headline = change.describe().splitlines()[0]
    assert "50 keys (" in headline and ") LOST" in headline and "persistence OFF" in headline
    assert "\nbgsave=0\n" in change.command and "\ncount=0\n" in change.command


def test_with_aof_nothing_is_saved_first_but_the_keys_are_counted() -> None:
    change = planned(found("aof", ""))
    assert "AOF on" in change.describe().splitlines()[0]
    assert "\nbgsave=0\n" in change.command and "\ncount=1\n" in change.command


def test_a_redis_that_is_not_running_is_started_unguarded() -> None:
    change = planned(found(None, pid=None))
    assert "not running: it is started" in change.describe().splitlines()[0]
    assert "before=''\n" in change.command and "\nbgsave=0\n" in change.command


def test_a_silent_redis_restarts_only_when_its_config_persists_the_data() -> None:
    full = "ERR max number of clients reached"
    change = planned(found(None, error=full))
    assert f"cost unknown, Redis does not answer ({full})" in change.describe()
    assert "\ncount=0\n" in change.command
    with pytest.raises(PlanError, match="redis_allow_data_loss=true"):
        planned(found(None, error=full, persisted_by_config=False))


def test_the_passwords_are_on_stdin_never_on_a_command_line() -> None:
    change = planned(found("aof", ""))
    script, _, stdin = change.command.partition("<<'REDMEDIC_STDIN_END'\n")
    assert "s3cret" not in script and stdin.startswith("s3cret\ns3cret\n")


def test_a_primary_with_replicas_asks_its_own_question_naming_them() -> None:
    args = RedisRestartArgs()
    question = STEP.question(args, found("rdb-primary-with-replica"))
    assert question is not None and "1 connected replicas (127.0.0.1:16392)" in question
    assert STEP.question(args, found("aof", "")) is None


def test_the_ask_scripts_answer_names_the_server_and_the_password_that_worked() -> None:
    marker = "@@m@@ "
    output = (
        f"\n{marker}init\nsystemd\n{marker}pid\n812\n{marker}answered\n2 -h 127.0.0.1 -p 6380\n"
        f"{marker}info\n{(DATA / 'aof.txt').read_text()}\n{marker}save\nsave\n\n"
    )
    running = parse_ask(split_sections(output, marker), ["new", "old", ""])
    assert running.pid == 812 and running.save == ""
    assert running.server == Server(("-h", "127.0.0.1", "-p", "6380"), "old")
    assert RestartCost.from_info(running.info, running.save).keys == 30
    silent = parse_ask(split_sections(f"\n{marker}init\nsystemd\n{marker}pid\n812\n", marker), [""])
    assert silent.server is None and silent.error == "no answer"
