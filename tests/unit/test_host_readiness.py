"""When the e2e fixture hands out a booted test host (tests/support/readiness.py).

Given what one login to a booting host answered, the pool either hands the host out,
asks again later, or gives up at once with the reason — never because a fixed delay ran
out. The answers below are what the ready script prints on a real host at each stage.
"""

from __future__ import annotations

from tests.support.readiness import parse_answer, ready_script, verdict


def test_a_host_whose_boot_is_over_and_whose_redis_answers_is_ready() -> None:
    answer = parse_answer("system=running\nredis=active\nping=PONG\n")
    assert answer == {"system": "running", "redis": "active", "ping": "PONG"}
    assert verdict(answer) is True
    # A unit nspawn cannot run may fail: the host is still what the tests need.
    assert verdict(parse_answer("system=degraded\nredis=active\nping=PONG\n")) is True


def test_a_host_still_booting_or_with_redis_still_starting_is_asked_again() -> None:
    assert verdict(parse_answer("system=starting\nredis=activating\nping=\n")) is False
    # `is-system-running --wait` ended by our deadline (`timeout`) prints nothing.
    assert verdict(parse_answer("system=\nredis=active\nping=PONG\n")) is False
    loading = "system=running\nredis=active\nping=LOADING Redis is loading the dataset\n"
    assert verdict(parse_answer(loading)) is False
    assert verdict(parse_answer("")) is False  # e.g. the login closed early


def test_a_host_whose_redis_failed_after_boot_is_given_up_at_once_with_the_reason() -> None:
    answer = parse_answer(
        "system=degraded\nredis=failed\n"
        "ping=Could not connect to Redis at 127.0.0.1:6379: Connection refused\n"
    )
    assert verdict(answer) == "boot finished (degraded) but redis-server failed to start"


def test_the_wait_on_the_host_ends_with_our_deadline() -> None:
    assert "timeout 42 systemctl is-system-running --wait" in ready_script(41.2)
    assert "timeout 1 " in ready_script(0.01)
