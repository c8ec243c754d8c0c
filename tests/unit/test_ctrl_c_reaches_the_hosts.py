"""Ctrl-C stops every host, even when the kernel hands the signal to a worker thread.

A process-wide SIGINT goes to whichever thread the kernel picks; a worker that is starting
a command may take it. Python then runs its handler only when the main thread next runs
bytecode, so the main thread must not sleep in an untimed wait while the hosts work.
"""

import signal
import threading

from redmedic.run.fleet import on_hosts


def test_a_ctrl_c_taken_by_a_worker_thread_still_cancels_the_hosts() -> None:
    cancel = threading.Event()

    def host() -> bool:
        signal.pthread_kill(threading.get_ident(), signal.SIGINT)  # this thread takes it
        return cancel.wait(timeout=20)  # a host stops at its next checkpoint once cancelled

    assert on_hosts([host], forks=1, cancel=cancel) == [True]
