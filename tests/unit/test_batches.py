"""--serial splits a fleet into canary batches; the last size repeats."""

from redmedic.model.inventory import Host
from redmedic.run.rollout import batches

HOSTS = [Host(f"h{i}", "127.0.0.1") for i in range(20)]


def sizes(*serial: str) -> list[int]:
    return [len(b) for b in batches(HOSTS, serial)]


def test_no_serial_is_one_batch() -> None:
    assert sizes() == [20]


def test_fixed_and_percent_sizes() -> None:
    assert sizes("5") == [5, 5, 5, 5]
    assert sizes("25%") == [5, 5, 5, 5]
    assert sizes("1", "10%", "100%") == [1, 2, 17]
