"""Confirmation gates: the on-call engineer approves each gated step, or all, or quits.

Hosts run in parallel threads, so prompts are serialised here and the [a]ll / [q]uit answers
apply to the whole run. What a gate asks and the answers are the run's vocabulary
(`events`), shared with the console prompt.
"""

from __future__ import annotations

import threading

from redmedic.events import Answer, Confirm, ConfirmRequest


class Gate:
    """Serialises confirmation prompts across host threads and remembers [a]ll / [q]uit."""

    def __init__(self, confirm: Confirm | None, *, approve_all: bool) -> None:
        self._confirm = confirm
        self._lock = threading.Lock()
        self._all = approve_all
        self._quit = False

    def approve(self, request: ConfirmRequest) -> bool:
        with self._lock:
            if self._quit:
                return False
            if self._all:
                return True
            if self._confirm is None:
                return False
            answer = self._confirm(request)
            if answer is Answer.ALL:
                self._all = True
            elif answer is Answer.QUIT:
                self._quit = True
            return answer in (Answer.YES, Answer.ALL)
