"""Load test: ``python -m bench.load [--users 50] [--seconds 60] [--records 100000] [--workers N]
[--url URL] [--json OUT]``.

Builds (or reuses, under ``bench/.cache/``) a SQLite store of N demo records, starts gunicorn
on a free loopback port with several workers over it (``app:server``, as in
``docs/deployment.md``), signs each simulated user in when sign-in is available (a throwaway
auth configuration made with ``python -m dashboard.auth``), then lets U users act at once for S
seconds, each in its own thread with its own HTTP session, the way a browser talks to the app:

* **page load** — ``GET`` the page, ``/_dash-layout``, ``/_dash-dependencies``, the Dash pages
  router callback (the page's content), the filter sync from the URL, and every callback the
  new page fires at once (its filter-driven content, the match count, control defaults);
* **filter change** — one global filter control changed at random (add or drop a country,
  facility, procedure, age band, …; a date range; clear one filter; Reset), posted to the
  shell's sync callback, then the match count and every callback of the current page that
  takes the filter state, in dependency order, with the state the server returned.

Each request is timed from sending to the last byte of the answer. An **error** is any
response that is not 2xx, a body that is not what the endpoint returns (JSON for Dash
endpoints), or a callback answer carrying the dashboard's error or database-outage alert.
The report gives requests, errors, throughput and p50/p95/p99 latency overall and per kind
of request, as a table and (``--json OUT``) as JSON; the exit status is 1 when any request
failed, 2 when the test could not run.

Not driven: the Comparison page's two background callbacks (Table 1 and the adjusted
comparison), which a browser starts as jobs and polls; their page still loads, and its
``comparison-mdd`` callback is driven. See ``bench/README.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from bench import CACHE_DIR, DEFAULT_SEED, PROJECT_ROOT
from bench.measures import _free_port, demo_csv
from bench.pages import FILTER, _ordered, _payload

DEFAULT_USERS = 50
DEFAULT_SECONDS = 60.0
DEFAULT_RECORDS = 100_000
DEFAULT_WORKERS = 4
PAGE_LOAD_SHARE = 0.25  # the rest of a user's actions are filter changes
THINK_SECONDS = (0.0, 0.5)  # pause between two actions of one user (uniform): a busy analyst
REQUEST_TIMEOUT = 180.0  # longer than gunicorn's --timeout: the server gives up first
# What the dashboard puts in a callback's output when it failed (components.error_state) or
# the database is gone (dashboard.availability): a 200 answer carrying one is still an error.
ERROR_MARKERS = ("This part of the page could not be computed", "The database is not reachable")
SHELL_CONTROLS = ("filter-country", "filter-region", "filter-facility", "filter-operator",
                  "filter-procedure", "filter-etiology", "filter-age", "filter-sex",
                  "filter-levels")
# How often a filter change touches each control (analysts filter by place and procedure most).
CONTROL_WEIGHTS = {"filter-country": 3, "filter-region": 1, "filter-facility": 2,
                   "filter-operator": 0.5, "filter-procedure": 3, "filter-etiology": 1,
                   "filter-age": 2, "filter-sex": 1, "filter-levels": 1, "dates": 2,
                   "clear": 1, "reset": 0.5}
ROUTER = ".._pages_content.children..._pages_store.data.."
LAST_LOG = CACHE_DIR / "load-last-gunicorn.log"


def _log(message: str) -> None:
    print(f"[load] {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------- the store


def prepare_store(records: int, seed: int = DEFAULT_SEED) -> Path:
    """A SQLite store of ``records`` demo records under ``bench/.cache/``, built once.

    The import runs through the data CLI (``python -m data import``); a marker file written
    after it succeeded tells a complete store from one an interrupted run left behind. The
    records snapshot is written too, so the server's workers start from it.
    """
    folder = CACHE_DIR / f"load_{records}{'' if seed == DEFAULT_SEED else f'_seed{seed}'}"
    path = folder / "store.db"
    if path.exists():
        _log(f"store: cached {path.relative_to(PROJECT_ROOT)}")
        return path
    csv = demo_csv(records, seed, log=_log)
    # Built in a folder of its own, renamed into place when complete: an interrupted run
    # leaves no half-filled store, and two runs building at once do not share one.
    building = Path(tempfile.mkdtemp(prefix=f"{folder.name}.building-", dir=CACHE_DIR))
    try:
        _log(f"store: importing {records:,} records into {path.relative_to(PROJECT_ROOT)} …")
        start = time.perf_counter()
        command = [sys.executable, "-m", "data", "--database", str(building / path.name),
                   "import", str(csv)]
        done = subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"import failed ({done.returncode}): {done.stderr[-2000:]}")
        # The records snapshot, so the server's workers start from it.
        snapshot = [sys.executable, "-c", "import sys; from data import load_records; "
                    "load_records(sys.argv[1])", str(building / path.name)]
        subprocess.run(snapshot, cwd=PROJECT_ROOT, check=True, capture_output=True)
        with contextlib.suppress(OSError):  # another run finished first: keep its store
            os.rename(building, folder)
        _log(f"store: imported in {time.perf_counter() - start:.1f} s")
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return path


# ---------------------------------------------------------------------------- sign-in setup


@dataclass
class Accounts:
    """A throwaway auth configuration and its local accounts (name, password)."""

    config: Path
    users: list[tuple[str, str]]


def auth_available() -> bool:
    """Whether this checkout has the sign-in CLI (``python -m dashboard.auth``)."""
    return (PROJECT_ROOT / "dashboard" / "auth" / "__main__.py").exists()


def make_accounts(folder: Path, count: int, database: str) -> Accounts:
    """``python -m dashboard.auth init`` in ``folder``, plus ``count`` analyst accounts with
    random passwords (given on standard input, never on a command line)."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    auth_dir = folder / "auth"
    run = {"cwd": PROJECT_ROOT, "capture_output": True, "text": True}
    done = subprocess.run([sys.executable, "-m", "dashboard.auth", "init", str(auth_dir)], **run)
    if done.returncode != 0:
        raise RuntimeError(f"dashboard.auth init failed: {done.stderr[-2000:]}")
    config = auth_dir / "auth.toml"
    # Plain HTTP on loopback: a cookie marked Secure would never be sent back.
    text = re.sub(r"(?m)^session_cookie_secure\s*=.*$", "session_cookie_secure = false",
                  config.read_text())
    config.write_text(text)
    users = []
    for number in range(1, count + 1):
        name, password = f"load-user-{number}", secrets.token_urlsafe(18)
        done = subprocess.run([sys.executable, "-m", "dashboard.auth", "--config", str(config),
                               "--database", database, "add-user", name, "--role", "analyst",
                               "--password-stdin"], input=password + "\n", **run)
        if done.returncode != 0:
            raise RuntimeError(f"dashboard.auth add-user failed: {done.stderr[-2000:]}")
        users.append((name, password))
    return Accounts(config, users)


# ---------------------------------------------------------------------------------- server


class Gunicorn:
    """``gunicorn -w N app:server`` on a free loopback port, in its own process group.

    Use as a context manager: the server is ready (``GET /`` answered 200) inside the block
    and stopped — SIGTERM, then SIGKILL of the whole group if it lingers — after it.

    Examples
    --------
    >>> with Gunicorn("sqlite:///store.db", workers=2) as server:  # doctest: +SKIP
    ...     print(server.url)
    http://127.0.0.1:41234
    """

    def __init__(self, database: str, workers: int = DEFAULT_WORKERS,
                 env: dict[str, str] | None = None, log_path: Path | None = None,
                 timeout: int = 120, ready_timeout: float = 300.0,
                 extra_args: list[str] | None = None) -> None:
        self.database, self.workers, self.timeout = database, workers, timeout
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.extra_env = dict(env or {})
        self.extra_args = list(extra_args or [])
        self.log_path = log_path or Path(tempfile.mkstemp(prefix="va-gunicorn-", suffix=".log")[1])
        self.ready_timeout = ready_timeout
        self.process: subprocess.Popen | None = None

    def command(self) -> list[str]:
        return [sys.executable, "-m", "gunicorn", "--workers", str(self.workers),
                "--bind", f"127.0.0.1:{self.port}", "--timeout", str(self.timeout),
                "--graceful-timeout", "20",
                # gunicorn's control socket defaults to one path per OS user: servers started
                # side by side (tests, a load test next to a dev server) would collide.
                "--no-control-socket", *self.extra_args, "app:server"]

    def start(self) -> Gunicorn:
        env = {**os.environ, "DATABASE_URL": self.database, **self.extra_env}
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(self.command(), cwd=PROJECT_ROOT, env=env,
                                            stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        self._wait_ready()
        return self

    def log_tail(self, characters: int = 4000) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-characters:]
        return ""

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with status {self.process.returncode}:\n"
                                   f"{self.log_tail()}")
            try:
                # /login when sign-in is on (the gate redirects there); / otherwise.
                with urllib.request.urlopen(self.url + "/", timeout=60) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"gunicorn gave no 200 on / within {self.ready_timeout:.0f} s:\n"
                           f"{self.log_tail()}")

    def worker_pids(self) -> list[int]:
        import psutil

        if self.process is None or self.process.poll() is not None:
            return []
        return [child.pid for child in psutil.Process(self.process.pid).children()]

    def worker_rss(self) -> list[int]:
        """Resident memory of each worker, bytes."""
        import psutil

        sizes = []
        for pid in self.worker_pids():
            with contextlib.suppress(psutil.Error):
                sizes.append(psutil.Process(pid).memory_info().rss)
        return sizes

    def worker_cpu_seconds(self) -> float:
        """User + system CPU time used so far by the workers (and their children)."""
        import psutil

        total = 0.0
        for pid in self.worker_pids():
            with contextlib.suppress(psutil.Error):
                times = psutil.Process(pid).cpu_times()
                total += times.user + times.system + times.children_user + times.children_system
        return total

    def stop(self) -> int | None:
        """Stop gracefully (SIGTERM to the master); the group is killed after 30 s."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=30)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)  # workers the master left behind
        self.process.wait(timeout=30)
        return self.process.returncode

    def __enter__(self) -> Gunicorn:
        return self.start()

    def __exit__(self, *_exc) -> None:
        self.stop()


# ------------------------------------------------------------------------ the app, as seen over HTTP


def _walk(tree):
    """Every component (dict with ``props``) in a Dash layout JSON tree."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            props = node.get("props")
            if isinstance(props, dict) and "type" in node:
                yield node
                stack.extend(v for v in props.values() if isinstance(v, (dict, list)))


def layout_values(tree) -> dict[tuple[str, str], object]:
    """(id, property) -> value for every component with a string id in a layout JSON tree."""
    values: dict[tuple[str, str], object] = {}
    for node in _walk(tree):
        props = node["props"]
        if isinstance(props.get("id"), str):
            for prop, value in props.items():
                if prop != "children" or not isinstance(value, (dict, list)):
                    values[(props["id"], prop)] = value
    return values


class _Output:
    """What :func:`bench.pages._payload` reads from an output (like ``dash.Output``)."""

    def __init__(self, text: str) -> None:
        self.component_id, _, self.component_property = text.rpartition(".")


def callback_entries(dependencies: list[dict]) -> dict[str, dict]:
    """``/_dash-dependencies`` as ``{output key: entry}`` in the shape of ``app.callback_map``
    (outputs as objects), server-side callbacks with string ids only."""
    entries = {}
    for dep in dependencies:
        key = dep["output"]
        if dep.get("clientside_function") or "{" in key:
            continue  # clientside, or pattern-matching ids (nav links, grid exports)
        if key.startswith(".."):
            outputs = [_Output(part) for part in key[2:-2].split("...")]
        else:
            outputs = _Output(key)
        entries[key] = {**dep, "output": outputs}
    return entries


def _outputs_of(entry) -> list[_Output]:
    return entry["output"] if isinstance(entry["output"], list) else [entry["output"]]


@dataclass
class Site:
    """What a browser learns from the server: callbacks, pages, filter options."""

    entries: dict[str, dict]
    pages: list[str]
    shell: dict[tuple[str, str], object]
    page_layouts: dict[str, dict[tuple[str, str], object]] = field(default_factory=dict)
    sync_key: str = ""

    def options(self, control: str) -> list[str]:
        return [str(o["value"]) for o in self.shell.get((control, "options")) or []]

    def date_bounds(self) -> tuple[str | None, str | None]:
        return (self.shell.get(("filter-dates", "min_date_allowed")),
                self.shell.get(("filter-dates", "max_date_allowed")))

    def initial_callbacks(self, path: str) -> list[tuple[str, dict]]:
        """Callbacks a fresh page fires: outputs in the page, every input present."""
        values = {**self.shell, **self.page_layouts[path]}
        ids = {component_id for component_id, _ in self.page_layouts[path]} | {"match-count"}
        chosen = []
        for key, entry in self.entries.items():
            if key in (ROUTER, self.sync_key) or entry.get("background"):
                continue
            if entry.get("prevent_initial_call") or not any(o.component_id in ids
                                                            for o in _outputs_of(entry)):
                continue
            inputs = {(i["id"], i["property"]) for i in entry["inputs"]}
            if all(i in values or i == FILTER for i in inputs):
                chosen.append((key, entry))
        return _ordered(chosen)

    def filter_callbacks(self, path: str) -> list[tuple[str, dict]]:
        """Callbacks a filter change fires on the page (and the shell's match count)."""
        return [(key, entry) for key, entry in self.initial_callbacks(path)
                if any((i["id"], i["property"]) == FILTER for i in entry["inputs"])]


# ----------------------------------------------------------------------------- measurements


@dataclass
class Sample:
    kind: str
    seconds: float
    ok: bool


class Recorder:
    """Thread-safe store of samples and of the first few error descriptions."""

    def __init__(self) -> None:
        self.samples: list[Sample] = []
        self.errors: list[str] = []
        self.actions: dict[str, list[float]] = defaultdict(list)
        self._lock = threading.Lock()

    def add(self, kind: str, seconds: float, error: str | None) -> None:
        with self._lock:
            self.samples.append(Sample(kind, seconds, error is None))
            if error is not None and len(self.errors) < 50:
                self.errors.append(f"{kind}: {error}")

    def action(self, name: str, seconds: float) -> None:
        with self._lock:
            self.actions[name].append(seconds)


class RequestFailed(Exception):
    """A request failed; the user's action stops (the error is already recorded)."""


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0–100) with linear interpolation between order statistics.

    >>> percentile([1.0, 2.0, 3.0, 4.0], 50)
    2.5
    """
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summarise(seconds_list: list[float], errors: int, elapsed: float) -> dict:
    return {"requests": len(seconds_list), "errors": errors,
            "per_second": len(seconds_list) / elapsed if elapsed else 0.0,
            "p50_ms": percentile(seconds_list, 50) * 1000,
            "p95_ms": percentile(seconds_list, 95) * 1000,
            "p99_ms": percentile(seconds_list, 99) * 1000,
            "max_ms": max(seconds_list, default=float("nan")) * 1000}


# ------------------------------------------------------------------------------ a user


class User:
    """One simulated analyst: a ``requests.Session`` acting until the deadline."""

    def __init__(self, number: int, base: str, site: Site, recorder: Recorder,
                 account: tuple[str, str] | None, seed: int,
                 think: tuple[float, float] = THINK_SECONDS) -> None:
        import requests

        self.number, self.base, self.site, self.recorder = number, base, site, recorder
        self.think = think
        self.account = account
        self.random = random.Random(seed)
        self.session = requests.Session()
        self.path = "/"
        self.controls: dict[str, list[str]] = {c: [] for c in SHELL_CONTROLS}
        self.dates: list[str | None] = [None, None]
        self.state: dict = {}
        self.search = ""

    # -- HTTP
    def _send(self, kind: str, method: str, path: str, *, expect_json: bool = False,
              redirect_ok: bool = False, **kwargs):
        start = time.perf_counter()
        try:
            response = self.session.request(method, self.base + path, timeout=REQUEST_TIMEOUT,
                                            allow_redirects=False, **kwargs)
            body = response.content  # read to the last byte inside the timing
        except Exception as error:  # noqa: BLE001 - every failure is a counted error
            self.recorder.add(kind, time.perf_counter() - start, f"{type(error).__name__}: "
                              f"{error}")
            raise RequestFailed from error
        seconds = time.perf_counter() - start
        problem = None
        if not (200 <= response.status_code < 300
                or (redirect_ok and response.status_code in (302, 303))):
            problem = f"HTTP {response.status_code} {body[:200]!r}"
        elif expect_json and response.status_code == 200:
            try:
                parsed = json.loads(body)
            except ValueError:
                problem = f"not JSON: {body[:200]!r}"
            else:
                text = body.decode("utf-8", "replace")
                marker = next((m for m in ERROR_MARKERS if m in text), None)
                if marker:
                    problem = f"error payload: {marker!r}"
                self.recorder.add(kind, seconds, problem)
                if problem:
                    raise RequestFailed
                return parsed
        self.recorder.add(kind, seconds, problem)
        if problem:
            raise RequestFailed
        return response

    def sign_in(self) -> None:
        if self.account is None:
            return
        page = self._send("sign-in", "GET", "/login").text
        token = re.search(r'name="csrf_token" value="([^"]+)"', page)
        if token is None:
            self.recorder.add("sign-in", 0.0, "no csrf_token in /login")
            raise RequestFailed
        name, password = self.account
        response = self._send("sign-in", "POST", "/login", redirect_ok=True, data={
            "username": name, "password": password, "csrf_token": token.group(1), "next": "/"})
        if response.status_code not in (302, 303):  # the form again: refused
            self.recorder.add("sign-in", 0.0, f"sign-in refused for {name}")
            raise RequestFailed

    def _callback(self, kind: str, key: str, values: dict, changed: list[str] | None = None):
        entry = self.site.entries[key]
        payload = _payload(key, entry, values, self.state)
        if changed is not None:
            payload["changedPropIds"] = changed
        answer = self._send(kind, "POST", "/_dash-update-component", json=payload,
                            expect_json=True)
        if isinstance(answer, dict):  # 204 (no update) has no body
            for component_id, props in answer.get("response", {}).items():
                for prop, value in props.items():
                    values[(component_id, prop)] = value
        return values

    def _page_values(self) -> dict:
        values = {**self.site.shell, **self.site.page_layouts[self.path]}
        values[("url", "search")] = self.search
        values[("filter-dates", "start_date")], values[("filter-dates", "end_date")] = self.dates
        for control, chosen in self.controls.items():
            values[(control, "value")] = list(chosen) or None
        return values

    def _sync(self, values: dict, changed: str) -> dict:
        values = self._callback("filters (sync)", self.site.sync_key, values, [changed])
        self.state = values.get(FILTER) or {}
        self.search = values.get(("url", "search"), self.search) or ""
        return values

    def _run_page_callbacks(self, values: dict, callbacks) -> None:
        for key, _entry in callbacks:
            kind = "match count" if key == "match-count.children" else f"callback {self.path}"
            self._callback(kind, key, values)

    # -- actions
    def page_load(self, path: str | None = None) -> None:
        """Open ``path`` (default: a page at random) as a browser does."""
        self.path = path or self.random.choice(self.site.pages)
        start = time.perf_counter()
        self._send("GET page", "GET", self.path + self.search)
        self._send("GET /_dash-layout", "GET", "/_dash-layout", expect_json=True)
        self._send("GET /_dash-dependencies", "GET", "/_dash-dependencies", expect_json=True)
        router = {("_pages_location", "pathname"): self.path,
                  ("_pages_location", "search"): self.search}
        self._callback("page content", ROUTER, router, ["_pages_location.pathname"])
        values = self._sync(self._page_values(), "url.search")
        self._run_page_callbacks(values, self.site.initial_callbacks(self.path))
        self.recorder.action("page load (all requests)", time.perf_counter() - start)

    def _change_filters(self) -> str:
        """Change one control at random; the changed property's id for ``changedPropIds``."""
        weights = dict(CONTROL_WEIGHTS)
        choice = self.random.choices(list(weights), weights=list(weights.values()))[0]
        if choice == "reset":
            self.controls = {c: [] for c in SHELL_CONTROLS}
            self.dates = [None, None]
            return "filter-reset.n_clicks"
        if choice == "clear":
            used = [c for c, v in self.controls.items() if v] + (
                ["dates"] if any(self.dates) else [])
            if not used:
                return self._change_filters()
            cleared = self.random.choice(used)
            if cleared == "dates":
                self.dates = [None, None]
                return "filter-dates.start_date"
            self.controls[cleared] = []
            return f"{cleared}.value"
        if choice == "dates":
            low, high = self.site.date_bounds()
            if not low or not high:
                return self._change_filters()
            first = time.mktime(time.strptime(low[:10], "%Y-%m-%d"))
            last = time.mktime(time.strptime(high[:10], "%Y-%m-%d"))
            a, b = sorted(self.random.uniform(first, last) for _ in range(2))
            self.dates = [time.strftime("%Y-%m-%d", time.localtime(a)),
                          time.strftime("%Y-%m-%d", time.localtime(b))]
            return "filter-dates.start_date"
        options = self.site.options(choice)
        if not options:
            return self._change_filters()
        chosen = self.controls[choice]
        if chosen and (len(chosen) >= 3 or self.random.random() < 0.3):
            chosen.remove(self.random.choice(chosen))
        else:
            chosen.append(self.random.choice([o for o in options if o not in chosen] or options))
        return f"{choice}.value"

    def filter_change(self) -> None:
        start = time.perf_counter()
        changed = self._change_filters()
        values = self._page_values()
        if changed == "filter-reset.n_clicks":
            values[("filter-reset", "n_clicks")] = self.random.randint(1, 10_000)
        values = self._sync(values, changed)
        self._run_page_callbacks(values, self.site.filter_callbacks(self.path))
        self.recorder.action("filter change (whole page update)", time.perf_counter() - start)

    def run(self, clock: Clock) -> None:
        """Sign in, wait for every user, then act until the clock's deadline (a first page
        load, then page loads and filter changes at random)."""
        with contextlib.suppress(RequestFailed):
            self.sign_in()  # a failure is recorded; the requests after it will fail too
        clock.barrier.wait()
        while time.monotonic() < clock.deadline:
            try:
                if not self.state or self.random.random() < PAGE_LOAD_SHARE:
                    self.page_load()
                else:
                    self.filter_change()
            except RequestFailed:
                pass  # recorded; the next action starts afresh
            time.sleep(self.random.uniform(*self.think))


class Clock:
    """The common start: the deadline is set when the last user has signed in."""

    def __init__(self, users: int, seconds: float) -> None:
        self.seconds = seconds
        self.start = self.deadline = float("inf")
        self.barrier = threading.Barrier(users, action=self._go)

    def _go(self) -> None:  # run by one thread, before any is released
        self.start = time.monotonic()
        self.deadline = self.start + self.seconds


# ------------------------------------------------------------------------------- the driver


def discover(base: str, account: tuple[str, str] | None) -> Site:
    """Read callbacks, pages, filter options and every page's layout, as a browser would."""
    recorder = Recorder()
    probe = User(0, base, Site({}, [], {}), recorder, account, seed=0)
    try:
        probe.sign_in()
        dependencies = probe._send("setup", "GET", "/_dash-dependencies", expect_json=True)
        layout = probe._send("setup", "GET", "/_dash-layout", expect_json=True)
    except RequestFailed:
        raise RuntimeError(f"the server did not answer the set-up requests: "
                           f"{recorder.errors}") from None
    entries = callback_entries(dependencies)
    shell = layout_values(layout)
    pages = []
    for node in _walk(layout):
        ident = node["props"].get("id")
        if isinstance(ident, dict) and ident.get("type") == "nav-link":
            pages.append(ident["path"])
    sync_key = next(key for key, entry in entries.items()
                    if any(o.component_id == "filter-state" for o in _outputs_of(entry)))
    site = Site(entries, pages, shell, sync_key=sync_key)
    probe.site = site
    for path in pages:
        values = probe._callback("setup", ROUTER, {("_pages_location", "pathname"): path,
                                                   ("_pages_location", "search"): ""},
                                 ["_pages_location.pathname"])
        site.page_layouts[path] = layout_values(values.get(("_pages_content", "children")))
    if recorder.errors:
        raise RuntimeError(f"set-up requests failed: {recorder.errors}")
    return site


def drive(base: str, users: int, seconds: float, accounts: list[tuple[str, str]] | None,
          seed: int = 1, think: tuple[float, float] = THINK_SECONDS) -> dict:
    """Run ``users`` simulated users against ``base`` for ``seconds``; the report as a dict."""
    site = discover(base, accounts[0] if accounts else None)
    _log(f"{len(site.pages)} pages, {len(site.entries)} server callbacks; "
         f"{users} users for {seconds:g} s …")
    recorder = Recorder()
    clock = Clock(users, seconds)
    population = [User(n, base, site, recorder, accounts[n % len(accounts)] if accounts else None,
                       seed=seed * 100_003 + n, think=think) for n in range(users)]
    threads = [threading.Thread(target=user.run, args=(clock,), daemon=True)
               for user in population]
    for thread in threads:
        thread.start()
    for thread in threads:  # an action started before the deadline is finished
        thread.join()
    elapsed = time.monotonic() - clock.start
    return report(recorder, elapsed, users, seconds, len(site.pages))


def report(recorder: Recorder, elapsed: float, users: int, seconds: float, pages: int) -> dict:
    by_kind: dict[str, list[Sample]] = defaultdict(list)
    for sample in recorder.samples:
        by_kind[sample.kind].append(sample)
    # Sign-ins happen before the clock starts: listed, but not in the overall figures.
    timed = [s for s in recorder.samples if s.kind != "sign-in"]
    every = [s.seconds for s in timed]
    errors = sum(not s.ok for s in recorder.samples)
    return {
        "users": users, "seconds": seconds, "elapsed_seconds": elapsed, "pages": pages,
        "overall": summarise(every, errors, elapsed),
        "kinds": {kind: summarise([s.seconds for s in samples], sum(not s.ok for s in samples),
                                  elapsed)
                  for kind, samples in sorted(by_kind.items())},
        "actions": {name: summarise(values, 0, elapsed)
                    for name, values in sorted(recorder.actions.items())},
        "error_samples": recorder.errors,
    }


def render(result: dict) -> str:
    head = (f"{'kind':<38} {'requests':>9} {'errors':>7} {'req/s':>7} {'p50 ms':>8} "
            f"{'p95 ms':>8} {'p99 ms':>8} {'max ms':>8}")

    def line(name: str, row: dict) -> str:
        return (f"{name:<38} {row['requests']:>9,} {row['errors']:>7,} {row['per_second']:>7.1f} "
                f"{row['p50_ms']:>8.0f} {row['p95_ms']:>8.0f} {row['p99_ms']:>8.0f} "
                f"{row['max_ms']:>8.0f}")

    lines = [f"load test: {result['users']} users, {result['elapsed_seconds']:.1f} s, "
             + ", ".join(f"{k} {v}" for k, v in result.get("setup", {}).items()), "", head,
             "-" * len(head)]
    lines += [line(kind, row) for kind, row in result["kinds"].items()]
    lines += ["-" * len(head), line("all requests", result["overall"]), "",
              "user actions (requests one after another, as timed by the user):", head,
              "-" * len(head)]
    lines += [line(name, row) for name, row in result["actions"].items()]
    if result["error_samples"]:
        lines += ["", "first errors:"] + [f"  {e}" for e in result["error_samples"][:10]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=DEFAULT_USERS)
    parser.add_argument("--seconds", type=float, default=DEFAULT_SECONDS)
    parser.add_argument("--records", type=int, default=DEFAULT_RECORDS,
                        help="demo records in the store (built once, cached in bench/.cache)")
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS, help="gunicorn workers")
    parser.add_argument("--database", help="use this store as it is (URL or SQLite path) "
                        "instead of the cached demo store")
    parser.add_argument("--url", help="drive this running server instead of starting one "
                        "(sign in with --username and the password in VA_LOAD_PASSWORD)")
    parser.add_argument("--username", help="account for --url")
    parser.add_argument("--auth", choices=("auto", "on", "off"), default="auto",
                        help="sign-in on the started server (auto: when dashboard.auth exists)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the users' choices")
    parser.add_argument("--think", type=float, nargs=2, default=THINK_SECONDS,
                        metavar=("MIN", "MAX"), help="seconds a user pauses between two actions "
                        "(uniform; default %(default)s)")
    parser.add_argument("--threads", type=int, default=1,
                        help="threads per gunicorn worker (gthread worker when > 1)")
    parser.add_argument("--json", metavar="OUT", help="also write the report as JSON to OUT")
    args = parser.parse_args(argv)
    if args.users < 1 or args.seconds <= 0 or args.records < 1 or args.workers < 1 \
            or args.threads < 1:
        parser.error("--users, --seconds, --records, --workers and --threads must be positive")
    if not 0 <= args.think[0] <= args.think[1]:
        parser.error("--think needs 0 <= MIN <= MAX")
    args.think = tuple(args.think)
    try:
        result = _run(args)
    except (RuntimeError, OSError, subprocess.CalledProcessError) as error:
        print(f"error: the load test could not run: {error}", file=sys.stderr)
        return 2
    print(render(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    errors = result["overall"]["errors"]
    if errors:
        print(f"FAILED: {errors} of {result['overall']['requests']} requests failed",
              file=sys.stderr)
        return 1
    return 0


def _run(args: argparse.Namespace) -> dict:
    if args.url:
        account = None
        if args.username:
            password = os.environ.get("VA_LOAD_PASSWORD")
            if not password:
                raise RuntimeError("--username needs the password in VA_LOAD_PASSWORD")
            account = (args.username, password)
        result = drive(args.url.rstrip("/"), args.users, args.seconds,
                       [account] if account else None, args.seed, args.think)
        result["setup"] = {"url": args.url, "think_seconds": list(args.think)}
        return result
    database = args.database or str(prepare_store(args.records))
    workdir = Path(tempfile.mkdtemp(prefix="va-load-"))
    os.chmod(workdir, 0o700)
    try:
        cache = workdir / "cache"
        cache.mkdir(mode=0o700)
        env = {"VA_CACHE_DIR": str(cache)}
        accounts = None
        use_auth = args.auth == "on" or (args.auth == "auto" and auth_available())
        if use_auth:
            made = make_accounts(workdir, min(args.users, 4), database)
            env["VA_AUTH_CONFIG"] = str(made.config)
            accounts = made.users
        else:
            env["VA_AUTH_CONFIG"] = ""
        _log(f"gunicorn: {args.workers} workers over {database} "
             f"({'sign-in on' if use_auth else 'no sign-in'}) …")
        started = time.perf_counter()
        extra = ["--threads", str(args.threads)] if args.threads > 1 else []
        with Gunicorn(database, args.workers, env, workdir / "gunicorn.log",
                      extra_args=extra) as server:
            _log(f"gunicorn: ready on {server.url} in {time.perf_counter() - started:.1f} s")
            cpu_before, client_before = server.worker_cpu_seconds(), time.process_time()
            result = drive(server.url, args.users, args.seconds, accounts, args.seed, args.think)
            cpu = server.worker_cpu_seconds() - cpu_before
            client_cpu = time.process_time() - client_before
            if server.process.poll() is not None:
                raise RuntimeError(f"gunicorn died during the test:\n{server.log_tail()}")
            rss = server.worker_rss()
        # The server's log outlives the run's temporary folder, for a look at any error.
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(workdir / "gunicorn.log", LAST_LOG)
        _log(f"gunicorn log: {LAST_LOG.relative_to(PROJECT_ROOT)}")
        result["setup"] = {"records": args.records if not args.database else "given store",
                           "workers": args.workers, "threads": args.threads,
                           "sign_in": use_auth, "think_seconds": list(args.think),
                           "worker_rss_mb": [round(r / 2**20) for r in rss],
                           # CPU the workers spent per request: less sensitive than latency
                           # to what else the machine is doing.
                           "server_cpu_seconds": round(cpu, 1),
                           "server_cpu_ms_per_request": round(
                               cpu * 1000 / max(result["overall"]["requests"], 1), 1),
                           "client_cpu_seconds": round(client_cpu, 1),
                           "load_average_1min": round(os.getloadavg()[0], 1),
                           "cpus": os.cpu_count()}
        return result
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
