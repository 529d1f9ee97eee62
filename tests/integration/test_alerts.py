"""Alerts after an import: e-mail to a local SMTP server and a JSON POST to a local receiver."""

from __future__ import annotations

import email
import http.server
import json
import re
import socketserver
import threading

import pytest

from dashboard import alerts
from data import audit, import_dataframe, importer, signal_reviews, store
from data.demo import ELEVATED_LEAKAGE_FACILITIES, demo_records

SECRET = "webhook-secret-for-tests-0123456789abcdef"


class _SMTPHandler(socketserver.StreamRequestHandler):
    """Just enough SMTP (RFC 5321) to receive a message: EHLO, MAIL, RCPT, DATA, QUIT."""

    def handle(self):
        self.wfile.write(b"220 localhost test SMTP\r\n")
        envelope = {"rcpt": []}
        while True:
            line = self.rfile.readline().decode("ascii", "replace").rstrip("\r\n")
            if not line:
                return
            verb = line.split(" ", 1)[0].upper()
            if verb in ("EHLO", "HELO"):
                self.wfile.write(b"250-localhost\r\n250 SIZE 1000000\r\n")
            elif verb == "MAIL":
                envelope["from"] = line
                self.wfile.write(b"250 OK\r\n")
            elif verb == "RCPT":
                envelope["rcpt"].append(line)
                self.wfile.write(b"250 OK\r\n")
            elif verb == "DATA":
                self.wfile.write(b"354 end with .\r\n")
                data = []
                while True:
                    chunk = self.rfile.readline()
                    if chunk in (b".\r\n", b""):
                        break
                    data.append(chunk)
                envelope["data"] = b"".join(data)
                self.server.messages.append(envelope)
                envelope = {"rcpt": []}
                self.wfile.write(b"250 queued\r\n")
            elif verb == "QUIT":
                self.wfile.write(b"221 bye\r\n")
                return
            else:
                self.wfile.write(b"250 OK\r\n")


class _Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 - the http.server API
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.posts.append((self.headers, body))  # case-insensitive header names
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def servers():
    smtp = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _SMTPHandler)
    smtp.messages = []
    web = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    web.posts = []
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in (smtp, web)]
    for thread in threads:
        thread.start()
    yield smtp, web
    for server in (smtp, web):
        server.shutdown()
        server.server_close()


@pytest.fixture
def configured(servers, tmp_path, monkeypatch):
    smtp, web = servers
    secret = tmp_path / "webhook_secret"
    secret.write_text(SECRET)
    secret.chmod(0o600)
    config = tmp_path / "alerts.toml"
    config.write_text(
        'base_url = "https://va.example.org"\n'
        f'[smtp]\nhost = "127.0.0.1"\nport = {smtp.server_address[1]}\nstarttls = false\n'
        'sender = "va-alerts@example.org"\nrecipients = ["quality@example.org"]\n'
        f'[webhook]\nurl = "http://127.0.0.1:{web.server_address[1]}/hook"\n'
        'secret_file = "webhook_secret"\n')
    monkeypatch.setenv(alerts.ENV_CONFIG, str(config))
    monkeypatch.setattr(importer, "IMPORT_LISTENERS", [])
    importer.load_import_listeners("dashboard.alerts")
    return smtp, web


def _numbers_after(text: str, word: str) -> list[int]:
    return [int(n.replace(",", "")) for n in re.findall(rf"\b{word} ([\d,]+)\b", text)]


def test_an_import_that_creates_signals_alerts_by_mail_and_webhook(configured, sqlite_database):
    smtp, web = configured
    records = demo_records(3000, seed=4)
    planted = records["facility_id"].isin(ELEVATED_LEAKAGE_FACILITIES)
    first = import_dataframe(records[~planted], "first", sqlite_database, synthetic=True)
    importer.run_import_listeners(sqlite_database, first)  # as the import entry points do
    seen_first = set(signal_reviews.first_seen(sqlite_database).index)
    assert not any(f"|{f}|" in key for key in seen_first for f in ELEVATED_LEAKAGE_FACILITIES)
    smtp.messages.clear()
    web.posts.clear()

    second = import_dataframe(records[planted], "second", sqlite_database, synthetic=True)
    importer.run_import_listeners(sqlite_database, second)

    # E-mail: one message listing the new signals with links, no small counts.
    assert len(smtp.messages) == 1
    message = email.message_from_bytes(smtp.messages[0]["data"])
    body = message.get_payload(decode=True).decode()
    assert message["To"] == "quality@example.org" and "new signal" in message["Subject"]
    for facility in ELEVATED_LEAKAGE_FACILITIES:
        assert (f"https://va.example.org/quality?outcome=cement_leakage&unit=facility_id&"
                f"cusum={facility}") in body
    counts = _numbers_after(body, "n") + _numbers_after(body, "observed")
    assert counts and all(c == 0 or c > 10 for c in counts)
    assert "<11" in body or all(c > 10 for c in counts)

    # Webhook: the same signals as JSON, signed with the shared secret.
    assert len(web.posts) == 1
    headers, raw = web.posts[0]
    import hashlib
    import hmac

    assert headers["X-VA-Signature"] == "sha256=" + hmac.new(
        SECRET.encode(), raw, hashlib.sha256).hexdigest()
    posted = json.loads(raw)
    keys = [s["key"] for s in posted["signals"]]
    assert f"funnel|cement_leakage|facility_id|{ELEVATED_LEAKAGE_FACILITIES[0]}|high" in keys
    assert not set(keys) & seen_first  # only the signals this import created
    assert posted["count"] == len(keys) == body.count("https://va.example.org/quality?")
    for signal in posted["signals"]:
        for field in ("n", "observed"):
            value = signal[field]
            assert value in ("<11", "0", "–") or int(value.replace(",", "")) > 10
        if signal["n"] == "<11" or signal["observed"] == "<11":
            assert signal["oe"] is None and signal["expected"] is None
    # Never record-level data: no record or patient id, no case date.
    ids = set(records["record_id"]) | set(records["patient_id"])
    assert not any(token in ids for token in re.findall(r"[\w-]+", body + raw.decode()))
    assert not re.search(r"\d{4}-\d{2}-\d{2}", body)

    event = audit.read_events(sqlite_database).iloc[0]
    assert event["action"] == "signal_alert" and event["detail"]["signals"] == len(keys)
    assert event["detail"]["emailed"] and event["detail"]["posted"]

    # A check with nothing new sends nothing.
    outcome = alerts.check(sqlite_database, alerts.config_from_env())
    assert outcome.new_keys == () and len(smtp.messages) == 1 and len(web.posts) == 1


def test_a_failing_channel_never_fails_the_import(sqlite_database, tmp_path, monkeypatch):
    config = tmp_path / "alerts.toml"
    config.write_text('[webhook]\nurl = "http://127.0.0.1:9/unreachable"\n')
    monkeypatch.setenv(alerts.ENV_CONFIG, str(config))
    monkeypatch.setattr(importer, "IMPORT_LISTENERS", [])
    importer.add_import_listener(alerts.on_import)
    result = import_dataframe(demo_records(600, seed=3), "demo", sqlite_database,
                              synthetic=True)
    importer.run_import_listeners(sqlite_database, result)  # no exception
    assert store.record_count(sqlite_database) == result.accepted
    event = audit.read_events(sqlite_database).iloc[0]
    assert event["action"] == "signal_alert" and not event["detail"]["posted"]


@pytest.mark.parametrize("text, message", [
    ('[smtp]\nhost = "x"\n', "lacks sender, recipients"),
    ('[webhook]\nurl = "ftp://x"\n', "http"),
    ('[smtp]\nhost = "x"\nsender = "a@b.org"\nrecipients = ["q@b.org"]\nusername = "u"\n',
     "password_file"),
])
def test_bad_configurations_are_refused_clearly(tmp_path, text, message, monkeypatch):
    monkeypatch.delenv(alerts.ENV_SMTP_PASSWORD, raising=False)
    path = tmp_path / "alerts.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        alerts.load_config(path)


def test_a_world_readable_smtp_password_file_is_refused(tmp_path, monkeypatch):
    monkeypatch.delenv(alerts.ENV_SMTP_PASSWORD, raising=False)
    secret = tmp_path / "smtp_password"
    secret.write_text("pw")
    secret.chmod(0o644)
    path = tmp_path / "alerts.toml"
    path.write_text('[smtp]\nhost = "x"\nsender = "a@b.org"\nrecipients = ["q@b.org"]\n'
                    'username = "u"\npassword_file = "smtp_password"\n')
    with pytest.raises(ValueError, match="smtp_password"):
        alerts.load_config(path)
    monkeypatch.setenv(alerts.ENV_SMTP_PASSWORD, "from-env")
    assert alerts.load_config(path).smtp_password == "from-env"


def test_the_import_command_calls_the_listeners_it_is_given(sqlite_database, tmp_path,
                                                            monkeypatch):
    from data.__main__ import main

    calls = []
    monkeypatch.setattr(importer, "IMPORT_LISTENERS", [])
    monkeypatch.setattr(alerts, "on_import", lambda database, result: calls.append(
        (database, result.batch_id, result.accepted)))
    monkeypatch.setenv(importer.ENV_IMPORT_LISTENERS, "dashboard.alerts")
    path = tmp_path / "export.csv"
    demo_records(40, seed=1).to_csv(path, index=False)
    assert main(["import", str(path), "--database", sqlite_database, "--no-limits"]) in (0, 1)
    assert calls == [(sqlite_database, 1, store.record_count(sqlite_database))]
    # An unknown listener module is a clear error, before anything is imported.
    monkeypatch.setenv(importer.ENV_IMPORT_LISTENERS, "no_such_module_here")
    assert main(["import", str(path), "--database", sqlite_database, "--no-limits"]) == 2
