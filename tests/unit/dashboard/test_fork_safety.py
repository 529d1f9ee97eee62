"""A Dash background job is a process forked from a threaded server: module locks held by
another thread at the moment of the fork must not leave the job waiting forever."""

from __future__ import annotations

import os
import signal
import time

import pytest

import dashboard.data_access as data_access


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
def test_selection_lock_is_fresh_in_a_forked_job():
    def take_lock():
        with data_access._SELECTED_LOCK:
            pass

    assert _run_in_fork_while_held(data_access, "_SELECTED_LOCK", take_lock) == 0


# --------------------------------------------------------------------------------------------
# The fork gate: no other request runs while a background job forks (SQLite's process-wide
# mutexes, held by another thread at the fork, once left a VP-vs-KP job hanging forever).
# --------------------------------------------------------------------------------------------


def _gated_app(gate, hold: float, log: list):
    """A WSGI app whose requests pass ``gate`` and take ``hold`` seconds, logging when."""
    def inner(environ, start_response):
        log.append(("start", environ["PATH_INFO"], time.monotonic()))
        time.sleep(hold)
        log.append(("end", environ["PATH_INFO"], time.monotonic()))
        start_response("200 OK", [])
        return [b""]

    def gated(environ, start_response):
        with gate.request():
            return inner(environ, start_response)
    return gated


def test_exclusive_waits_for_other_requests_and_holds_new_ones():
    import threading

    from dashboard.compute_cache import ForkGate

    gate, log = ForkGate(timeout=10), []
    app = _gated_app(gate, 0.3, log)
    first = threading.Thread(target=app, args=({"PATH_INFO": "/slow"}, lambda *a: None))
    first.start()
    time.sleep(0.05)  # /slow is in progress
    later = threading.Thread(target=app, args=({"PATH_INFO": "/later"}, lambda *a: None))
    with gate.exclusive():
        forked_at = time.monotonic()
        later.start()
        time.sleep(0.2)  # /later must wait for the fork to end
        released_at = time.monotonic()
    first.join()
    later.join()
    times = {(kind, path): when for kind, path, when in log}
    assert times[("end", "/slow")] <= forked_at  # the running request finished first
    assert times[("start", "/later")] >= released_at  # the new one waited


def test_the_forking_request_does_not_wait_for_itself():
    from dashboard.compute_cache import ForkGate

    gate = ForkGate(timeout=5)
    started = time.monotonic()
    with gate.request(), gate.exclusive():
        pass
    assert time.monotonic() - started < 1


def test_two_requests_starting_jobs_at_once_do_not_wait_for_each_other():
    import threading

    from dashboard.compute_cache import ForkGate

    gate, both_inside, done = ForkGate(timeout=10), threading.Barrier(2), []

    def start_job():
        with gate.request():
            both_inside.wait()  # both requests are in progress before either forks
            with gate.exclusive():
                time.sleep(0.05)
            done.append(time.monotonic())
    started = time.monotonic()
    threads = [threading.Thread(target=start_job) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(15)
    assert len(done) == 2 and max(done) - started < 2


def test_a_request_that_never_ends_delays_the_fork_only_until_the_timeout():
    import logging
    import threading

    from dashboard.compute_cache import ForkGate

    gate, release = ForkGate(timeout=0.3), threading.Event()

    def stuck():
        with gate.request():
            release.wait(5)
    thread = threading.Thread(target=stuck)
    thread.start()
    time.sleep(0.05)
    messages = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: messages.append(record.getMessage())
    logger = logging.getLogger("dashboard.compute_cache")
    logger.addHandler(handler)
    try:
        started = time.monotonic()
        with gate.exclusive():
            waited = time.monotonic() - started
    finally:
        logger.removeHandler(handler)
        release.set()
        thread.join()
    assert 0.25 <= waited < 2
    assert messages == ["background job forked while 1 other request(s) still ran"]


def test_background_jobs_fork_inside_the_gate(monkeypatch, tmp_path):
    import dash

    import dashboard.compute_cache as compute_cache

    monkeypatch.setenv("VA_CACHE_DIR", str(tmp_path / "cache"))
    seen = []
    monkeypatch.setattr(dash.DiskcacheManager, "call_job_fn",
                        lambda self, *args: seen.append(compute_cache.FORK_GATE._forking) or 4242)
    manager = compute_cache.background_manager()
    assert manager.call_job_fn("key", None, (), {}) == 4242
    assert seen == [True] and compute_cache.FORK_GATE._forking is False


def test_the_app_passes_every_request_through_the_gate(monkeypatch, tmp_path):
    import dashboard.compute_cache as compute_cache
    from dashboard.app_factory import create_app

    monkeypatch.setenv("VA_CACHE_DIR", str(tmp_path / "cache"))
    entered = []
    original = compute_cache.FORK_GATE.request

    def counting():
        entered.append(1)
        return original()
    monkeypatch.setattr(compute_cache.FORK_GATE, "request", counting)
    app = create_app(f"sqlite:///{tmp_path / 'store.db'}")
    client = app.server.test_client()
    client.get("/_dash-layout")
    client.get("/_dash-dependencies")
    assert len(entered) == 2
