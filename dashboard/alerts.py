"""Alerts: when an import creates new quality signals, tell the quality team.

After an import batch commits, :func:`on_import` computes the current signals of all stored
records (:func:`analysis.signals.current_signals`, with the Quality page's settings and
small-cell rule) and compares them with the signals seen before (the store's
``signal_alerts`` table, :mod:`data.signal_reviews`). Before the first check ever, the
baseline is the signals of the store without the new batch, so the first import alerts only on
what it changed. New signals are sent by e-mail (SMTP) and/or as a JSON POST to a webhook, each
with the signal, the unit, its O/E and a link to the Quality page view; counts of 1 to the
suppression threshold are never sent (the Signals page's display table is sent, not the raw
counts), nor any record-level data (no record, patient or case date). Each alert is audited
(``signal_alert``). A failed delivery is logged and never fails the import.

Where it hooks in
-----------------
Imports run ``dashboard -> analysis -> data``: the data layer must not import this module. It
offers a listener list instead (:func:`data.importer.add_import_listener`) that its import
entry points (``python -m data import`` and the Data page's upload) call after a batch
commits. The web app registers :func:`on_import` at start when alerts are configured
(:func:`install`); the command line loads the modules named in ``VA_IMPORT_LISTENERS``
(``VA_IMPORT_LISTENERS=dashboard.alerts``). ``python -m dashboard.alerts check`` runs the same
check by hand or from cron.

Configuration
-------------
A TOML file named by ``VA_ALERTS_CONFIG`` (paths relative to it)::

    base_url = "https://va.example.org"     # the links in alerts
    [smtp]
    host = "smtp.example.org"
    port = 587
    starttls = true                          # or ssl = true (port 465)
    username = "va-alerts"                   # optional
    password_file = "smtp_password"          # or env VA_SMTP_PASSWORD
    sender = "va-alerts@example.org"
    recipients = ["quality-lead@example.org"]
    [webhook]
    url = "https://hooks.example.org/va"
    secret_file = "webhook_secret"           # optional, or env VA_WEBHOOK_SECRET

Secrets are handled as the sign-in secrets are (:mod:`dashboard.auth.config`): from the
environment, or from a file readable by its owner alone (mode 0600). With a webhook secret the
POST carries ``X-VA-Signature: sha256=<HMAC-SHA256 of the body>``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import hashlib
import hmac
import json
import logging
import os
import smtplib
import sys
import threading
import tomllib
import urllib.request
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa

from analysis.signals import READ_COLUMNS, SignalOptions, current_signals
from dashboard.figures.signals import alert_lines, page_exclude, signals_table
from data import audit, load_records, signal_reviews, store

log = logging.getLogger(__name__)

ENV_CONFIG = "VA_ALERTS_CONFIG"
ENV_SMTP_PASSWORD = "VA_SMTP_PASSWORD"
ENV_WEBHOOK_SECRET = "VA_WEBHOOK_SECRET"
ACTOR = "system:alerts"
#: Look-back of the CUSUM signals considered (days before the newest procedure).
DEFAULT_DAYS = 365
#: Fields of a signal sent in a webhook (display values: suppressed, no record-level data).
WEBHOOK_FIELDS = ("key", "signal", "outcome", "unit_type", "unit_id", "n", "observed",
                  "expected", "oe", "oe_ci", "false_alarm")


class AlertConfigError(ValueError):
    """The alerts configuration is invalid; the message says which key and why."""


@dataclasses.dataclass(frozen=True)
class AlertConfig:
    base_url: str = "http://127.0.0.1:8050"
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_starttls: bool = True
    smtp_ssl: bool = False
    smtp_username: str | None = None
    smtp_password: str | None = dataclasses.field(default=None, repr=False)
    sender: str | None = None
    recipients: tuple[str, ...] = ()
    webhook_url: str | None = None
    webhook_secret: str | None = dataclasses.field(default=None, repr=False)
    timeout: float = 10.0


@dataclasses.dataclass(frozen=True)
class AlertOutcome:
    new_keys: tuple[str, ...]
    emailed: bool
    posted: bool


def load_config(path: str | os.PathLike[str]) -> AlertConfig:
    """Read and check an alerts configuration (see the module notes)."""
    from dashboard.auth.config import _read_secret

    path = Path(path)
    try:
        table = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise AlertConfigError(f"alerts config {path}: {error}") from None
    base = path.parent
    values: dict[str, Any] = {"base_url": str(table.get("base_url", AlertConfig.base_url))}
    smtp = table.get("smtp")
    if smtp is not None:
        missing = [k for k in ("host", "sender", "recipients") if not smtp.get(k)]
        if missing:
            raise AlertConfigError(f"alerts config {path}: [smtp] lacks {', '.join(missing)}")
        recipients = smtp["recipients"]
        if isinstance(recipients, str) or not all(isinstance(r, str) for r in recipients):
            raise AlertConfigError(f"alerts config {path}: smtp.recipients must be a list of "
                                   "addresses")
        values.update(smtp_host=str(smtp["host"]), smtp_port=int(smtp.get("port", 587)),
                      smtp_starttls=bool(smtp.get("starttls", True)),
                      smtp_ssl=bool(smtp.get("ssl", False)), sender=str(smtp["sender"]),
                      recipients=tuple(recipients), smtp_username=smtp.get("username"))
        if smtp.get("username"):
            values["smtp_password"] = _read_secret(base, path, "smtp.password_file",
                                                   smtp.get("password_file"),
                                                   ENV_SMTP_PASSWORD, "SMTP password file")
    hook = table.get("webhook")
    if hook is not None:
        url = str(hook.get("url", ""))
        if not url.startswith(("https://", "http://")):
            raise AlertConfigError(f"alerts config {path}: webhook.url must be an http(s) URL")
        values["webhook_url"] = url
        if hook.get("secret_file") is not None or os.environ.get(ENV_WEBHOOK_SECRET):
            values["webhook_secret"] = _read_secret(base, path, "webhook.secret_file",
                                                    hook.get("secret_file"), ENV_WEBHOOK_SECRET,
                                                    "webhook secret file")
    if "timeout" in table:
        values["timeout"] = float(table["timeout"])
    return AlertConfig(**values)


def config_from_env() -> AlertConfig | None:
    path = os.environ.get(ENV_CONFIG, "").strip()
    return load_config(path) if path else None


# ------------------------------------------------------------------------------ the signals
def _signals(records: pd.DataFrame):
    records = records[[c for c in READ_COLUMNS if c in records.columns]]
    since = None
    if not records.empty:
        latest = pd.to_datetime(records["procedure_date"]).max()
        since = (latest - pd.Timedelta(days=DEFAULT_DAYS)).date()
    return current_signals(records, SignalOptions(since=since, exclude=page_exclude)).signals


def _batch_ids(database: str | None, batch_id: int) -> list[str]:
    table = store.records
    with store.get_engine(database).connect() as connection:
        return [r[0] for r in connection.execute(
            sa.select(table.c.record_id).where(table.c.batch_id == batch_id))]


def _never_checked(database: str | None) -> bool:
    with store.get_engine(database).connect() as connection:
        return connection.execute(
            sa.select(sa.func.count()).select_from(store.signal_alerts)).scalar_one() == 0


def new_signals(database: str | None, batch_id: int | None = None) -> pd.DataFrame:
    """The display rows (suppressed) of the signals not seen before, now remembered as seen."""
    records = load_records(database)
    version = store.data_version(database)
    if batch_id is not None and _never_checked(database):
        before = records[~records["record_id"].isin(_batch_ids(database, batch_id))]
        signal_reviews.note_seen(database, _signals(before)["key"], f"before-{version}")
    signals = _signals(records)
    new = signal_reviews.note_seen(database, signals["key"], version)
    table = signals_table(signals)
    return table[table["key"].isin(new)].reset_index(drop=True)


# ------------------------------------------------------------------------------- delivery
def _subject(table: pd.DataFrame) -> str:
    count = len(table)
    return f"Quality signals: {count} new signal{'s' if count != 1 else ''}"


def send_email(config: AlertConfig, table: pd.DataFrame) -> None:
    message = EmailMessage()
    message["Subject"] = _subject(table)
    message["From"] = config.sender
    message["To"] = ", ".join(config.recipients)
    lines = alert_lines(table, config.base_url)
    message.set_content(
        "New quality signals after the latest import (a prompt to look, not a verdict):\n\n"
        + "\n".join(f"- {line}" for line in lines)
        + f"\n\nAll signals: {config.base_url.rstrip('/')}/signals\n"
        "Counts of 1 to the suppression threshold are not shown.\n")
    smtp_class = smtplib.SMTP_SSL if config.smtp_ssl else smtplib.SMTP
    with smtp_class(config.smtp_host, config.smtp_port, timeout=config.timeout) as smtp:
        if config.smtp_starttls and not config.smtp_ssl:
            smtp.ehlo()
            if smtp.has_extn("starttls"):
                smtp.starttls()
            else:
                raise smtplib.SMTPException("the SMTP server does not offer STARTTLS")
        if config.smtp_username:
            smtp.login(config.smtp_username, config.smtp_password or "")
        smtp.send_message(message)


def webhook_body(table: pd.DataFrame, base_url: str, version: str) -> dict:
    """The JSON posted to the webhook (display values only)."""
    signals = []
    for row in table.to_dict("records"):
        item = {k: row[k] for k in WEBHOOK_FIELDS}
        item["link"] = f"{base_url.rstrip('/')}{row['link']}"
        signals.append(item)
    return {"event": "quality_signals", "data_version": version, "count": len(signals),
            "signals": signals, "signals_page": f"{base_url.rstrip('/')}/signals"}


def post_webhook(config: AlertConfig, body: dict) -> None:
    data = json.dumps(body, default=str).encode("utf-8")
    request = urllib.request.Request(config.webhook_url, data=data, method="POST",
                                     headers={"Content-Type": "application/json"})
    if config.webhook_secret:
        digest = hmac.new(config.webhook_secret.encode(), data, hashlib.sha256).hexdigest()
        request.add_header("X-VA-Signature", f"sha256={digest}")
    with urllib.request.urlopen(request, timeout=config.timeout) as response:  # noqa: S310
        if response.status >= 300:
            raise OSError(f"webhook answered HTTP {response.status}")


def check(database: str | None, config: AlertConfig,
          batch_id: int | None = None) -> AlertOutcome:
    """Find the new signals and send them; returns what was found and sent."""
    table = new_signals(database, batch_id)
    if table.empty:
        return AlertOutcome((), False, False)
    emailed = posted = False
    if config.smtp_host:
        try:
            send_email(config, table)
            emailed = True
        except (OSError, smtplib.SMTPException) as error:
            log.warning("alert e-mail failed: %s", type(error).__name__)
    if config.webhook_url:
        try:
            post_webhook(config, webhook_body(table, config.base_url,
                                              store.data_version(database)))
            posted = True
        except OSError as error:
            log.warning("alert webhook failed: %s", type(error).__name__)
    keys = tuple(table["key"])
    if emailed or posted:
        signal_reviews.note_notified(database, keys)
    audit.log_event(database, ACTOR, "signal_alert", {
        "signals": len(keys), "emailed": emailed, "posted": posted,
        "units": sorted({k.split("|")[3] for k in keys})[:50]})
    return AlertOutcome(keys, emailed, posted)


# ------------------------------------------------------------------------------- the hook
def on_import(database: str | None, result) -> None:
    """Import listener (:func:`data.importer.add_import_listener`): alert on new signals.

    Does nothing without a configuration or when the batch changed nothing; never raises.
    """
    try:
        config = config_from_env()
        if config is None or getattr(result, "batch_id", None) is None:
            return
        if not getattr(result, "accepted", 0) and not getattr(result, "replaced", 0):
            return
        check(database, config, result.batch_id)
    except Exception:  # noqa: BLE001 - an alert must never fail an import
        log.exception("quality alerts after import failed")


def on_import_in_background(database: str | None, result) -> None:
    """:func:`on_import` in a daemon thread: an upload's page answers at once (the signals
    take seconds to compute)."""
    threading.Thread(target=on_import, args=(database, result), name="va-alerts",
                     daemon=True).start()


def install() -> bool:
    """In the web app: register :func:`on_import_in_background` when alerts are configured
    (``VA_ALERTS_CONFIG``); the configuration is checked now, so a bad one fails at start."""
    from data.importer import add_import_listener

    if config_from_env() is None:
        return False
    add_import_listener(on_import_in_background)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dashboard.alerts",
                                     description="Quality signal alerts.")
    parser.add_argument("command", choices=["check"],
                        help="check: alert on signals not seen before (after an import, cron)")
    parser.add_argument("--database", default=None, help="store URL or SQLite path")
    parser.add_argument("--config", default=None, help=f"alerts config (default ${ENV_CONFIG})")
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config) if args.config else config_from_env()
    except AlertConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if config is None:
        print(f"error: no alerts configuration (--config or {ENV_CONFIG})", file=sys.stderr)
        return 2
    outcome = check(args.database, config)
    print(f"{len(outcome.new_keys)} new signal(s); e-mail {'sent' if outcome.emailed else 'not sent'}; "
          f"webhook {'posted' if outcome.posted else 'not posted'} "
          f"({dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
