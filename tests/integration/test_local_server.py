"""``python app.py`` (local single-user mode) says plainly that it is the local server and
where serving others is described, instead of Flask's red development-server warning."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from data import import_dataframe, store
from data.demo import demo_records

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_local_server_note_replaces_the_development_server_warning(tmp_path):
    database = f"sqlite:///{tmp_path / 'store.db'}"
    import_dataframe(demo_records(300, seed=3), "demo", database, synthetic=True)
    store.dispose_engines()
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "app.py", "--port", str(port), "--database", database], cwd=ROOT,
        env={**os.environ, "VA_AUTH_CONFIG": ""},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        answered = False
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not answered:
            try:
                answered = urllib.request.urlopen(f"http://127.0.0.1:{port}/",
                                                  timeout=5).status == 200
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.5)
        assert answered, "the app did not start"
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=20)
    assert "This is the local server" in output
    assert "docs/deployment.md" in output
    assert "development server" not in output.lower()
