"""`--retries`: which failures are tried again, how long we wait, and when we give up."""

from __future__ import annotations

from pathlib import Path

import pytest

from redmedic.cli import main
from redmedic.connection import ConnectOptions
from redmedic.connection.base import Connection
from redmedic.connection.local import LocalConnection
from redmedic.connection.retry import MAX_DELAY_S, backoff_delay, connect_with_retries
from redmedic.errors import AuthError, ConnectError, HostKeyError, UnreachableError
from redmedic.model.inventory import Host

HOST = Host(name="db1", address="10.0.0.5")


class Flaky:
    """A connector failing with the given errors first, then connecting."""

    def __init__(self, *errors: UnreachableError) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self, host: Host, options: ConnectOptions) -> Connection:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return LocalConnection(host, options)


def test_delays_double_with_jitter_in_their_upper_half_and_are_capped() -> None:
    assert [backoff_delay(n, lambda: 0.0) for n in (1, 2, 3, 4)] == [0.5, 1.0, 2.0, 4.0]
    assert [backoff_delay(n, lambda: 0.999) for n in (1, 2)] == pytest.approx([1.0, 2.0], 0.01)
    assert backoff_delay(50, lambda: 0.999) <= MAX_DELAY_S


def test_a_refused_connection_is_retried_and_each_retry_is_reported() -> None:
    connector = Flaky(ConnectError("db1", "refused"), ConnectError("db1", "reset"))
    noted: list[tuple[int, str]] = []
    waited: list[float] = []

    def sleep(delay: float) -> bool:
        waited.append(delay)
        return False

    conn = connect_with_retries(
        connector,
        HOST,
        ConnectOptions(retries=3),
        on_retry=lambda attempt, delay, exc: noted.append((attempt, exc.message)),
        sleep=sleep,
        draw=lambda: 0.0,
    )

    assert isinstance(conn, LocalConnection)
    assert noted == [(1, "refused"), (2, "reset")]
    assert waited == [0.5, 1.0]


@pytest.mark.parametrize(
    "error", [AuthError("db1", "login refused"), HostKeyError("db1", "host key has CHANGED")]
)
def test_login_and_host_key_failures_are_never_retried(error: UnreachableError) -> None:
    connector = Flaky(error)

    with pytest.raises(type(error)):
        connect_with_retries(
            connector, HOST, ConnectOptions(retries=5), on_retry=_fail, sleep=_no_sleep
        )

    assert connector.calls == 1


def test_giving_up_says_how_often_it_was_tried() -> None:
    connector = Flaky(*(ConnectError("db1", "connection refused") for _ in range(3)))

    with pytest.raises(ConnectError) as caught:
        connect_with_retries(
            connector, HOST, ConnectOptions(retries=2), on_retry=_ignore, sleep=_no_sleep
        )

    assert str(caught.value) == "db1: connection refused (gave up after 2 retries)"
    assert connector.calls == 3


def test_no_retries_by_default_and_a_cancelled_run_stops_waiting() -> None:
    connector = Flaky(ConnectError("db1", "refused"))
    with pytest.raises(ConnectError, match=r"^db1: refused$"):
        connect_with_retries(connector, HOST, ConnectOptions(), on_retry=_fail, sleep=_no_sleep)

    connector = Flaky(ConnectError("db1", "refused"))
    with pytest.raises(ConnectError):
        connect_with_retries(
            connector, HOST, ConnectOptions(retries=3), on_retry=_ignore, sleep=lambda d: True
        )
    assert connector.calls == 1


def _fail(attempt: int, delay: float, exc: ConnectError) -> None:
    raise AssertionError("must not retry")


def _ignore(attempt: int, delay: float, exc: ConnectError) -> None:
    pass


def _no_sleep(delay: float) -> bool:
    return False


@pytest.mark.parametrize(
    "flags", [["--retries", "-1"], ["--command-timeout", "-5"], ["--connect-timeout", "0"]]
)
def test_bad_retry_and_timeout_flags_are_one_line_usage_errors(
    flags: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    playbook = tmp_path / "pb.yaml"
    playbook.write_text("name: x\nhosts: all\ndiagnose:\n  - shell: 'true'\n")
    inventory = tmp_path / "inv.yaml"
    inventory.write_text("all:\n  hosts:\n    box: {ansible_connection: local}\n")

    assert main(["run", str(playbook), "-i", str(inventory), "--check", *flags]) == 2

    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot be negative" in err
