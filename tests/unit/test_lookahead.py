"""Reads answered ahead: served only for the very command, recorded while recording."""

from __future__ import annotations

import pytest

from redmedic.connection.base import CommandResult
from redmedic.connection.lookahead import Lookahead, NotYetRead
from redmedic.connection.scripts import MarkerSequence, new_marker, replaying


def result(command: str) -> CommandResult:
    return CommandResult(command, 0, f"{command} said\n", "")


def test_an_answer_is_served_only_for_the_same_command_and_become() -> None:
    ahead = Lookahead({("cat a", True): result("cat a")})
    assert ahead.answer("cat a", True) == result("cat a")
    assert ahead.answer("cat a", False) is None  # another identity reads another file
    assert ahead.answer("cat b", True) is None
    assert ahead.answer_all(["cat a", "cat b"], True) is None


def test_while_recording_a_read_without_answer_is_noted_once_and_stops_the_step() -> None:
    ahead = Lookahead({("cat a", True): result("cat a")}, wanted=[])
    assert ahead.answer("cat a", True) is not None  # answered: the step goes on
    with pytest.raises(NotYetRead):
        ahead.answer_all(["cat a", "cat b", "cat c"], True)
    with pytest.raises(NotYetRead):
        ahead.answer("cat b", True)
    assert ahead.wanted == [("cat b", True), ("cat c", True)]


def test_no_step_mistakes_the_stop_for_an_error_of_its_own() -> None:
    assert not issubclass(NotYetRead, Exception)


def test_a_step_draws_the_same_markers_on_each_pass_and_others_fresh_ones() -> None:
    sequence = MarkerSequence()
    with replaying(sequence):
        first = [new_marker(), new_marker()]
    with replaying(sequence):
        again = [new_marker(), new_marker(), new_marker()]
    assert again[:2] == first and again[2] not in first
    outside = new_marker()
    assert outside not in again and new_marker() != outside
