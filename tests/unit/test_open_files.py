"""`redis_open_files` as data: what a host answered in, the decision and the changes out.

The section texts are what the step's round trip prints, cut from outputs captured on a
Debian 12 systemd-nspawn test host (Redis 7.0.15, pid 33, user redis = uid 101 / gid 102).
This machine's root lacks CAP_SYS_RESOURCE (CapEff fcecbfff: bit 24 clear), so a host
whose root has it is the captured text with only CapEff edited (fdecbfff: bit 24 set):
the live raise beyond the hard limit is proven here on those facts; on real hosts the
e2e tests prove the live path up to the hard limit and the refusal.
"""

from __future__ import annotations

import pytest

from redmedic.connection.base import RemoteFile
from redmedic.model.plan import (
    LIVE,
    Change,
    CommandChange,
    FileChange,
    restart_needed,
    shown,
    takes_effect_live,
)
from redmedic.redis.open_files import has_capability
from redmedic.steps.redis_open_files import (
    OpenFilesFound,
    RedisOpenFiles,
    RedisOpenFilesArgs,
    decide,
)
from redmedic.systemd.dropin import dropin_state

DROPIN = "/etc/systemd/system/redis-server.service.d/zz-redmedic-nofile.conf"

# --- captured -------------------------------------------------------------------------------
ROOT_WITHOUT_CAP = "Uid:\t0\t0\t0\t0\nCapEff:\t00000000fcecbfff"
ROOT_WITH_CAP = "Uid:\t0\t0\t0\t0\nCapEff:\t00000000fdecbfff"  # only CapEff edited
REDIS_IDS = "Uid:\t101\t101\t101\t101\nGid:\t102\t102\t102\t102"
TOOLS = "/usr/bin/prlimit\n/usr/bin/setpriv"
HOST = {"tools": TOOLS, "nr-open": "1048576", "status": REDIS_IDS, "dir": "no"}

# The LimitNOFILE=40 fault (a drop-in nofile.conf, daemon-reload, restart): Redis capped
# maxclients at 8.
NOFILE_40 = {
    **HOST,
    "show": "MainPID=33\nLimitNOFILE=40\nLoadState=loaded\nNeedDaemonReload=no",
    "dir": "yes",
    "limits": "Max open files            40                   40                   files     ",
    "maxclients": "maxclients\n8",
}
# Debian's unit (LimitNOFILE=65535, nspawn gives 20000), then the soft limit lowered at
# runtime to 1000 (prlimit as the redis user): maxclients 10000 still, but no files for it.
SOFT_LOWERED = {
    **HOST,
    "show": "MainPID=33\nLimitNOFILE=65535\nLoadState=loaded\nNeedDaemonReload=no",
    "limits": "Max open files            1000                 20000                files     ",
    "maxclients": "maxclients\n10000",
}


def args(**more: object) -> RedisOpenFilesArgs:
    values: dict[str, object] = {"unit": "redis-server", "nofile": 65535, "maxclients": 10000}
    return RedisOpenFilesArgs.model_validate({**values, **more})


def found_on(step_args: RedisOpenFilesArgs, sections: dict[str, str]) -> OpenFilesFound:
    state = dropin_state(step_args.dropin, sections, None, become=True)
    return decide(step_args, state, sections)


def planned(
    step_args: RedisOpenFilesArgs, sections: dict[str, str]
) -> tuple[OpenFilesFound, list[Change]]:
    found = found_on(step_args, sections)
    return found, RedisOpenFiles().plan(step_args, found)


def commands(changes: list[Change]) -> list[tuple[str, str | None]]:
    return [(c.command, c.undo_command) for c in changes if isinstance(c, CommandChange)]


# --- the live raise beyond the hard limit (root with CAP_SYS_RESOURCE) -----------------------


def test_with_the_capability_the_limit_and_maxclients_are_raised_live_and_nothing_restarts() -> (
    None
):
    # Given the LimitNOFILE=40 host whose root has CAP_SYS_RESOURCE
    found, changes = planned(args(), {**NOFILE_40, "caller": ROOT_WITH_CAP})
    # Then the plan raises both limits, sets maxclients live and writes the drop-in
    assert found.refused is None
    assert commands(changes)[0] == (
        "prlimit --pid 33 --nofile=65535:65535",
        "prlimit --pid 33 --nofile=40:40",
    )
    assert commands(changes)[2:] == [
        ("mkdir -p -- /etc/systemd/system/redis-server.service.d", "systemctl daemon-reload"),
        ("systemctl daemon-reload", "systemctl daemon-reload"),
    ]
    set_maxclients = changes[1]
    assert isinstance(set_maxclients, CommandChange)
    assert "CONFIG SET maxclients 10000" in set_maxclients.command
    assert "CONFIG SET maxclients 8" in (set_maxclients.undo_command or "")
    dropin = changes[3]
    assert isinstance(dropin, FileChange) and dropin.path == DROPIN
    assert dropin.after.endswith(b"[Service]\nLimitNOFILE=65535\n")
    # And every change is live: the step notifies no restart handler
    assert all(takes_effect_live(c) for c in changes)
    assert shown(changes[0]) == "prlimit --pid 33 --nofile=65535:65535 (live, no restart)"


def test_a_saved_plan_raises_the_limit_only_of_the_process_it_was_planned_for() -> None:
    _, changes = planned(args(), {**NOFILE_40, "caller": ROOT_WITH_CAP})
    raise_ = changes[0]
    assert isinstance(raise_, CommandChange)
    assert raise_.precondition == (
        "systemctl show -p MainPID --value -- redis-server.service",
        "33\n",
    )


# --- the refusal (this machine's root, for real) -----------------------------------------------


def test_without_the_capability_a_hard_limit_below_maxclients_falls_back_to_the_restart() -> None:
    found, changes = planned(args(), {**NOFILE_40, "caller": ROOT_WITHOUT_CAP})
    why = "raising the hard limit 40 → 65535 needs CAP_SYS_RESOURCE, which root lacks on this host"
    assert found.refused == why
    mkdir, dropin, reload = changes
    assert isinstance(dropin, FileChange) and dropin.effect == restart_needed(why)
    assert not takes_effect_live(dropin)  # so the step's notify (the restart) fires
    assert (mkdir.effect, reload.effect) == (None, None)  # type: ignore[union-attr]
    assert shown(dropin).endswith(f"(needs a restart: {why})")
    facts = RedisOpenFiles().registered(found).facts
    assert (facts["live"], facts["refused"], facts["open_files"]) == (
        False,
        why,
        {"soft": 40, "hard": 40},
    )


def test_a_unit_that_already_has_the_limit_gets_a_reload_carrying_the_restart() -> None:
    # Given the drop-in is already there (the process started before it)
    step_args = args()
    sections = {**NOFILE_40, "caller": ROOT_WITHOUT_CAP}
    text = b"# Written by redmedic: change the playbook rather than this file.\n"
    text += b"[Service]\nLimitNOFILE=65535\n"
    file = RemoteFile(DROPIN, text, 0o644, "root", "root")
    state = dropin_state(step_args.dropin, sections, file, become=True)
    found = decide(step_args, state, sections)
    [reload] = RedisOpenFiles().plan(step_args, found)
    assert isinstance(reload, CommandChange) and reload.command == "systemctl daemon-reload"
    assert reload.effect == restart_needed(found.refused or "")


def test_no_running_process_means_the_drop_in_for_its_start() -> None:
    sections = {**HOST, "caller": ROOT_WITH_CAP, "show": "MainPID=0\nLoadState=loaded"}
    found, changes = planned(args(), sections)
    assert found.refused and "not running" in found.refused
    assert [c.effect for c in changes if isinstance(c, FileChange)] == [
        restart_needed(found.refused)
    ]


def test_mixed_ids_cannot_be_matched_without_the_capability() -> None:
    odd = {**SOFT_LOWERED, "caller": ROOT_WITHOUT_CAP, "status": "Uid:\t101\t0\t101\t101\nGid:\t1"}
    found, _ = planned(args(nofile=20000), odd)
    assert found.refused and "mixed uids/gids" in found.refused


# --- the live path up to the hard limit (this machine) --------------------------------------


def test_a_soft_limit_below_the_hard_one_is_raised_as_redis_s_own_user() -> None:
    found, changes = planned(args(nofile=20000), {**SOFT_LOWERED, "caller": ROOT_WITHOUT_CAP})
    assert found.refused is None and found.set_maxclients is False  # maxclients is 10000
    prlimit = "setpriv --reuid=101 --regid=102 --clear-groups prlimit --pid 33"
    assert commands(changes)[0] == (
        f"{prlimit} --nofile=20000:20000",
        f"{prlimit} --nofile=1000:20000",
    )
    assert len(changes) == 4 and all(c.effect == LIVE for c in changes)  # type: ignore[union-attr]


def test_a_wanted_limit_above_the_hard_one_still_goes_live_when_the_hard_one_is_enough() -> None:
    # nspawn caps open files at 20000: 65535 cannot be had live, but 10032 can
    found, changes = planned(args(), {**SOFT_LOWERED, "caller": ROOT_WITHOUT_CAP})
    assert found.refused is None
    assert commands(changes)[0][0].endswith("prlimit --pid 33 --nofile=20000:20000")
    dropin = changes[2]
    assert isinstance(dropin, FileChange)
    assert dropin.after.endswith(b"LimitNOFILE=65535\n")  # the next start asks for it all


def test_the_password_reaches_redis_cli_in_its_environment_never_its_command_line() -> None:
    sections = {**NOFILE_40, "caller": ROOT_WITH_CAP}
    step_args = args(password="s3cret pass")
    state = dropin_state(step_args.dropin, sections, None, become=True)
    found = decide(step_args, state, sections, step_args.password)
    set_maxclients = RedisOpenFiles().plan(step_args, found)[1]
    assert isinstance(set_maxclients, CommandChange)
    calls = [line for line in set_maxclients.command.splitlines() if "redis-cli" in line]
    assert calls and all("s3cret" not in line.partition("redis-cli")[2] for line in calls)
    assert "REDISCLI_AUTH='s3cret pass' timeout" in set_maxclients.command


def test_redis_cli_that_cannot_read_maxclients_refuses_the_live_path() -> None:
    sections = {
        **SOFT_LOWERED,
        "caller": ROOT_WITH_CAP,
        "maxclients": "NOAUTH Authentication required.",
    }
    found, _ = planned(args(), sections)
    assert found.refused == (
        "redis-cli could not read maxclients at 127.0.0.1:6379: NOAUTH Authentication required."
    )


def test_capabilities_are_read_from_cap_eff() -> None:
    assert has_capability(ROOT_WITH_CAP) and not has_capability(ROOT_WITHOUT_CAP)


def test_nofile_must_cover_maxclients() -> None:
    with pytest.raises(ValueError, match="below the 10032 open files maxclients 10000 needs"):
        args(nofile=10000)
