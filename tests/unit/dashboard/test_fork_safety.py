"""A Dash background job is a process forked from a threaded server: module locks held by
another thread at the moment of the fork must not leave the job waiting forever."""

from __future__ import annotations

import os
import signal
import time

import pytest

import analysis.filters as filters
import dashboard.data_access as data_access
from data.demo import demo_records


def _run_in_fork_while_held(lock_owner, attribute: str, work) -> int:
    """Fork while ``lock_owner.<attribute>`` is held; the child runs ``work`` and exits 0.
    Returns the child's exit status (-1 when it hung and was killed)."""
    with getattr(lock_owner, attribute):
        pid = os.fork()
        if pid == 0:  # the child: the parent's lock was held at the fork
            try:
                work()
                os._exit(0)
            except BaseException:  # noqa: BLE001 - report through the exit status only
                os._exit(1)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return -1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX fork")
def test_filter_index_lock_is_fresh_in_a_forked_job():
    records = demo_records(200, seed=3)
    assert _run_in_fork_while_held(filters, "_INDEX_LOCK",
                                   lambda: filters.frame_index(records)) == 0


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX fork")
def test_selection_lock_is_fresh_in_a_forked_job():
    def take_lock():
        with data_access._SELECTED_LOCK:
            pass

    assert _run_in_fork_while_held(data_access, "_SELECTED_LOCK", take_lock) == 0
