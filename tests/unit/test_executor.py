"""One host's run, told over a scripted host: what the executor runs there, and in what order.

Given a host that answers from a script (`ScriptedConnection`: every command it ran and
every round trip is recorded), when I run a playbook on it, then the host ends as the
story says: untouched when all is well, fixed and verified, or put back as it was.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from redmedic.events import Answer, ChangePlanned, ConfirmRequest, Event, RolledBack, StepDone
from redmedic.model.inventory import Host
from redmedic.playbook import load_playbook
from redmedic.run.executor import HostResult, HostRun, RunOptions, Status
from redmedic.run.gate import Gate
from redmedic.safety.planfile import SavedHost
from redmedic.steps import builtin_step_types
from redmedic.testing import Reply, ScriptedConnection, file_reply

START_REDIS = """\
name: Start redis
hosts: redis
diagnose:
  - name: Is redis running
    shell: pidof redis-server
fix:
  - name: Redis runs and starts at boot
    service: {name: redis-server, state: started, enabled: true}
verify:
  - name: Redis answers
    shell: redis-cli ping
    expect_stdout: PONG
"""

EDIT_BIND = """\
name: Listen on all interfaces
hosts: redis
diagnose:
  - name: Is redis answering
    shell: redis-cli ping
fix:
  - name: Bind to every interface
    file_line: {path: /etc/redis/redis.conf, regexp: '^bind ', line: 'bind 0.0.0.0'}
"""

PROBE = "systemctl is-active"  # the service step's one read of the unit's state
PONG: Reply = (0, "PONG\n", "")
REFUSED: Reply = (1, "", "Could not connect to Redis at 127.0.0.1:6379: Connection refused\n")
NOT_RUNNING: Reply = (1, "", "")
OK: Reply = (0, "", "")


class Story:
    """A playbook run on one scripted host, with what the user would see."""

    def __init__(self, tmp_path: Path, playbook: str, script: dict[str, Reply]) -> None:
        path = tmp_path / "playbook.yaml"
        path.write_text(playbook, encoding="utf-8")
        self.playbook = load_playbook(path, builtin_step_types())
        self.conn = ScriptedConnection(script, Host(name="redis-1", address="10.213.57.2"))
        self.events: list[Event] = []
        self.asked: list[ConfirmRequest] = []

    def run(self, *, check: bool = False, answer: Answer = Answer.YES) -> HostResult:
        return self.host_run(RunOptions(check=check), answer=answer).run()

    def host_run(
        self, options: RunOptions, *, answer: Answer = Answer.YES, saved: SavedHost | None = None
    ) -> HostRun:
        def confirm(request: ConfirmRequest) -> Answer:
            self.asked.append(request)
            return answer

        return HostRun(
            self.conn.host,
            self.playbook,
            options,
            builtin_step_types(),
            self.events.append,
            Gate(confirm, approve_all=False),
            lambda host, options: self.conn,
            saved=saved,
        )

    def ran_after(self, needle: str) -> list[str]:
        """The commands the host ran after the first one containing `needle`."""
        first = next(i for i, command in enumerate(self.conn.commands) if needle in command)
        return self.conn.commands[first + 1 :]

    def ran(self, needle: str) -> bool:
        return any(needle in command for command in self.conn.commands)


def stopped_redis(
    tmp_path: Path, *, enabled: str, then: Reply, playbook: str = START_REDIS
) -> Story:
    """A host whose redis is stopped (and `enabled` at boot or "disabled"); once its unit
    is acted on, `redis-cli` answers `then`."""
    unit = (0, f"inactive\n{enabled}\n", "")
    return Story(
        tmp_path,
        playbook,
        {"pidof": NOT_RUNNING, PROBE: unit, "systemctl": OK, "redis-cli": then},
    )


def test_a_healthy_host_is_left_alone_and_reported_ok(tmp_path: Path) -> None:
    # Given a host whose redis runs, starts at boot and answers
    story = Story(
        tmp_path,
        START_REDIS,
        {"pidof": (0, "812\n", ""), PROBE: (0, "active\nenabled\n", ""), "redis-cli": PONG},
    )
    # When I run the playbook
    result = story.run()
    # Then nothing was planned or changed, and verify still looked
    assert (result.status, result.changed, result.failed) == (Status.OK, 0, 0)
    assert not [e for e in story.events if isinstance(e, ChangePlanned)]
    assert not story.ran("systemctl start") and not story.ran("systemctl enable")
    assert story.ran("redis-cli ping")


def test_a_stopped_redis_is_started_then_verified(tmp_path: Path) -> None:
    # Given a host whose redis is enabled but stopped, and answers once started
    story = stopped_redis(tmp_path, enabled="enabled", then=PONG)
    # When I run the playbook
    result = story.run()
    # Then redis was started, then verified, and the host counts one change
    assert (result.status, result.changed) == (Status.CHANGED, 1)
    assert story.ran_after(PROBE) == ["systemctl start redis-server", "redis-cli ping"]


def test_when_verify_fails_the_hosts_changes_are_undone_newest_first(tmp_path: Path) -> None:
    # Given a host whose redis is disabled and stopped, and still refuses once started
    story = stopped_redis(tmp_path, enabled="disabled", then=REFUSED)
    # When I run the playbook
    result = story.run()
    # Then it was enabled and started, verify failed, and both were undone in reverse order
    assert story.ran_after(PROBE) == [
        "systemctl enable redis-server",
        "systemctl start redis-server",
        "redis-cli ping",
        "systemctl stop redis-server",
        "systemctl disable redis-server",
    ]
    assert result.status is Status.FAILED and result.changed == 0
    assert result.message.startswith("verify 'Redis answers' failed: exit code 1, expected 0")
    assert result.message.endswith("this host's changes were rolled back")
    [rolled_back] = [e for e in story.events if isinstance(e, RolledBack)]
    assert rolled_back.undone == ("systemctl start redis-server", "systemctl enable redis-server")


def test_a_declined_gate_changes_nothing(tmp_path: Path) -> None:
    # Given a stopped redis and a fix step that asks first
    gated = START_REDIS.replace(
        "    service: {", "    confirm: Start redis on this host?\n    service: {"
    )
    story = stopped_redis(tmp_path, enabled="enabled", then=PONG, playbook=gated)
    # When I answer no
    result = story.run(answer=Answer.NO)
    # Then I was shown the question and the change, and the host was not changed
    [asked] = story.asked
    assert (asked.host, asked.step, asked.question) == (
        "redis-1",
        "Redis runs and starts at boot",
        "Start redis on this host?",
    )
    assert [c.description for c in asked.changes] == ["systemctl start redis-server"]
    assert not story.ran("systemctl start")
    assert (result.status, result.message) == (Status.DECLINED, "a change was declined")


def test_a_run_of_diagnose_shell_steps_is_one_round_trip(tmp_path: Path) -> None:
    # Given three independent diagnose commands, and a fourth that reads the first's output
    playbook = """\
name: Look around
hosts: redis
diagnose:
  - {name: Ping, shell: redis-cli ping, register: ping}
  - {name: Listeners, shell: ss -ltn}
  - {name: Log tail, shell: tail -n 5 /var/log/redis/redis-server.log}
  - {name: Say what ping said, shell: "echo {{ ping.stdout | trim }}"}
"""
    story = Story(
        tmp_path,
        playbook,
        {
            "redis-cli": PONG,
            "ss -ltn": (0, "LISTEN 0 511 127.0.0.1:6379\n", ""),
            "tail": OK,
            "echo": (0, "PONG\n", ""),
        },
    )
    # When I run it
    result = story.run(check=True)
    # Then the three went to the host in one round trip, the fourth after the first answered
    assert story.conn.round_trips == [
        ["redis-cli ping", "ss -ltn", "tail -n 5 /var/log/redis/redis-server.log"],
        ["echo PONG"],
    ]
    # and each step was still reported on its own, in order
    done = [(e.step, e.output) for e in story.events if isinstance(e, StepDone)]
    assert done == [
        ("Ping", "PONG"),
        ("Listeners", "LISTEN 0 511 127.0.0.1:6379"),
        ("Log tail", ""),
        ("Say what ping said", "PONG"),
    ]
    assert result.status is Status.OK


def test_a_step_with_no_batch_command_runs_between_batches(tmp_path: Path) -> None:
    # Given diagnose commands around an `assert` (a step type that names no batch command)
    # and a command whose `when:` is false
    playbook = """\
name: Look around
hosts: redis
diagnose:
  - {name: Ping, shell: redis-cli ping, register: ping}
  - {name: Listeners, shell: ss -ltn}
  - {name: Answers, assert: {that: ["'PONG' in ping.stdout"]}}
  - {name: Only when refused, shell: journalctl -u redis-server, when: "'PONG' not in ping.stdout"}
  - {name: Log tail, shell: tail -n 5 /var/log/redis/redis-server.log}
  - {name: Memory, shell: free -m}
"""
    story = Story(tmp_path, playbook, {"redis-cli": PONG, "ss": OK, "tail": OK, "free": OK})
    # When I run it
    result = story.run(check=True)
    # Then the commands before and after the assert went in one round trip each, and the
    # step whose condition is false ran nothing
    assert story.conn.round_trips == [
        ["redis-cli ping", "ss -ltn"],
        ["tail -n 5 /var/log/redis/redis-server.log", "free -m"],
    ]
    skipped = [e.step for e in story.events if isinstance(e, StepDone) and e.status == "skipped"]
    assert (skipped, result.status) == (["Only when refused"], Status.OK)


def test_a_file_a_fix_step_will_edit_is_read_in_the_diagnose_round_trip(tmp_path: Path) -> None:
    # Given a redis.conf bound to loopback and a fix step that edits it
    story = Story(
        tmp_path,
        EDIT_BIND,
        {
            "redis-cli": REFUSED,
            "/etc/redis/redis.conf": file_reply("bind 127.0.0.1\nport 6379\n", owner="redis"),
        },
    )
    # When I dry-run the playbook
    result = story.run(check=True)
    # Then the file came back with the diagnose command: planning cost no round trip
    [trip] = story.conn.round_trips
    assert trip[0] == "redis-cli ping" and "/etc/redis/redis.conf" in trip[1]
    [planned] = [e for e in story.events if isinstance(e, ChangePlanned)]
    assert "-bind 127.0.0.1\n+bind 0.0.0.0\n" in planned.diff
    assert (result.status, result.changed) == (Status.WOULD_CHANGE, 1)


def test_a_host_error_names_the_step_it_happened_in(tmp_path: Path) -> None:
    # Given a redis.conf the login user may not read
    denied: Reply = (1, "", "cat: /etc/redis/redis.conf: Permission denied\n")
    story = Story(tmp_path, EDIT_BIND, {"redis-cli": PONG, "/etc/redis/redis.conf": denied})
    # When I dry-run the playbook
    result = story.run(check=True)
    # Then the step read it again itself (the early read is not kept), and the host's
    # failure says which step could not read what
    assert len(story.conn.round_trips) == 2
    assert result.status is Status.FAILED
    assert result.message.startswith("Bind to every interface: cannot read /etc/redis/redis.conf")
    assert result.message.endswith("Permission denied")


def test_a_reviewed_plan_is_refused_when_the_service_changed_since(tmp_path: Path) -> None:
    # Given a plan made while redis was stopped
    planning = stopped_redis(tmp_path, enabled="enabled", then=PONG)
    planner = planning.host_run(RunOptions(check=True, keep_plan=True))
    planner.run()
    assert planner.saved_plan is not None
    # When someone started it by hand before I applied the reviewed plan
    applying = stopped_redis(tmp_path, enabled="enabled", then=PONG)
    applying.conn.script[PROBE] = (0, "active\nenabled\n", "")
    result = applying.host_run(RunOptions(), saved=planner.saved_plan).run()
    # Then nothing was applied and the host's failure says it drifted
    assert not applying.ran("systemctl start")
    assert result.status is Status.FAILED
    assert "the host changed since the plan was made (now: active enabled" in result.message


def test_applying_a_plan_never_plans_a_host_it_has_no_changes_for(tmp_path: Path) -> None:
    # Given a stopped redis that a fresh plan would start, and a plan with nothing for it
    applying = stopped_redis(tmp_path, enabled="enabled", then=PONG)
    result = applying.host_run(RunOptions(), saved=SavedHost("redis-1", "not in the plan")).run()
    # Then apply refuses the host instead of planning it afresh: nothing ran
    assert not applying.ran("systemctl start")
    assert result.status is Status.FAILED
    assert "the plan has no changes for this host" in result.message


ADVERSARIAL = Path(__file__).parent.parent / "data" / "adversarial"


def test_a_sensitive_steps_output_is_masked_in_every_form(tmp_path: Path) -> None:
    # Given a sensitive step printing two secret lines and a secret on stderr, a later step
    # echoing its first line, and sensitive steps whose failure messages would quote output,
    story = Story(
        tmp_path,
        (ADVERSARIAL / "secrets-sensitive-playbook.yaml").read_text(),
        {
            "token2": (0, "Sens1tive-two-first\nSens1tive-two-second-" + "y" * 300 + "\n", ""),
            "token3": (1, "Sens1tive-three\n", "Sens1tive-three-err\n"),
            "token": (0, "Sens1tive-first\nSens1tive-second\n", "Sens1tive-err\n"),
            "echo": (0, "Sens1tive-first Sens1tive-err\n", ""),
        },
    )
    # when I run it (the rest of the steps run: the failures are data in diagnose),
    story.run()
    # then nothing the user sees holds any part of that output.
    shown = repr(story.events)
    assert "Sens1tive" not in shown, shown
    assert story.ran("echo Sens1tive-first Sens1tive-err")  # the host still got the value


def test_transformed_secrets_are_masked_wherever_the_template_puts_them(tmp_path: Path) -> None:
    # Given templates that upper-case, slice and reverse secrets (one inside a mapping),
    story = Story(
        tmp_path,
        (ADVERSARIAL / "secrets-transformed-playbook.yaml").read_text(),
        {"echo": (0, "TRANSF0RMED-SECRET\n", "")},
    )
    story.conn.host = replace(
        story.conn.host,
        vars={"redis_password": "transf0rmed-secret", "db": {"password": "Nested-pw"}},
    )
    # when I run the playbook,
    story.run()
    # then the host got the transformed values, and nothing shown holds them.
    assert story.ran("echo TRANSF0RMED-SECRET") and story.ran("wp-detseN")
    shown = repr(story.events)
    for piece in ("TRANSF0RMED", "ansf0rmed", "wp-detseN"):
        assert piece not in shown, shown


def test_a_quoted_password_is_masked_in_the_plan_and_every_event(tmp_path: Path) -> None:
    # Given a password with a single quote, passed through the documented `quote` filter,
    story = Story(
        tmp_path,
        (ADVERSARIAL / "secrets-quote-playbook.yaml").read_text(),
        {"redis-cli": (0, "PONG\n", "")},
    )
    story.conn.host = replace(story.conn.host, vars={"redis_password": "it's-Qu0ted rest"})
    # when I run the playbook and its fix is planned and applied,
    story.run()
    # then the host ran the quoted form, and no event (plan, gate, result) shows any of it.
    assert story.ran("'it'\"'\"'s-Qu0ted rest'")
    shown = repr(story.events) + repr(story.asked)
    for piece in ("Qu0ted", "s-Q", "rest'"):
        assert piece not in shown, shown
