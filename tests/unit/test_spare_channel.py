"""The channel opened ahead: handed to the next command once, never to two, never closed."""

from __future__ import annotations

import threading
from typing import cast

import paramiko

from redmedic.connection.spare import SpareChannel


class Channel:
    """What a paramiko session channel is to the spare: open or closed."""

    def __init__(self, number: int) -> None:
        self.number = number
        self.closed = False


class Opener:
    """Opens numbered channels; the open waits until the test lets it finish."""

    def __init__(self) -> None:
        self.count = 0
        self.go = threading.Event()
        self.fail = False

    def __call__(self) -> paramiko.Channel:
        self.go.wait(timeout=30)
        if self.fail:
            raise paramiko.SSHException("no more sessions")
        self.count += 1
        return cast(paramiko.Channel, Channel(self.count))


def test_nothing_is_spare_until_asked_then_the_next_command_gets_it() -> None:
    opener = Opener()
    spare = SpareChannel(opener)
    assert spare.take() is None
    spare.ask()
    spare.ask()  # one on its way is enough
    opener.go.set()
    taken = spare.take()
    assert cast(Channel, taken).number == 1 and opener.count == 1
    assert spare.take() is None  # taken once


def test_two_commands_at_once_never_share_one() -> None:
    opener = Opener()
    spare = SpareChannel(opener)
    spare.ask()
    got: list[object] = []
    threads = [threading.Thread(target=lambda: got.append(spare.take())) for _ in range(2)]
    for thread in threads:
        thread.start()
    opener.go.set()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(g is None for g in got) == [False, True]


def test_a_failed_or_closed_spare_makes_the_command_open_its_own() -> None:
    opener = Opener()
    opener.fail = True
    opener.go.set()
    spare = SpareChannel(opener)
    spare.ask()
    assert spare.take() is None  # the open failed

    opener.fail = False
    spare.ask()
    opening = spare._next
    assert opening is not None and opening.done.wait(timeout=30)
    cast(Channel, opening.channel).closed = True  # the host closed it before a command came
    assert spare.take() is None
