"""Run the dashboard: ``python app.py [--host H] [--port P] [--database URL_OR_PATH]
[--auth-config PATH]``.

When the store is empty it is first filled with the synthetic demo dataset.
``app.server`` is the WSGI application for production servers (e.g. gunicorn ``app:server``),
configured by the environment: ``DATABASE_URL`` and ``VA_AUTH_CONFIG``.

Sign-in (docs/security.md): listening on anything but loopback needs an auth configuration;
``python app.py --host 0.0.0.0`` without one refuses to start (exit status 2). Without one the
app answers loopback clients only, as the local admin.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys

from dashboard.app_factory import create_app
from dashboard.auth.config import AuthConfig, AuthConfigError, config_path_from_env, load_config
from dashboard.auth.web import is_loopback
from data import store
from data.importer import import_dataframe

DEFAULT_DEMO_RECORDS = 5000


def ensure_data(database: str | None, demo_records: int = DEFAULT_DEMO_RECORDS) -> None:
    """Open the store (creating it if needed) and fill an empty one with demo data."""
    url = store.database_url(database)
    print(f"store: {store.describe(url)}", flush=True)
    count = store.record_count(database)
    if count:
        print(f"{count:,} records in the store", flush=True)
        return
    from data.demo import demo_records as generate

    print(f"the store is empty: adding {demo_records:,} synthetic demo records "
          "(marked synthetic)…", flush=True)
    result = import_dataframe(generate(demo_records), f"demo-{demo_records}", database,
                              synthetic=True)
    print(f"demo data imported as batch {result.batch_id}: {result.accepted:,} records", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Vertebral augmentation outcomes dashboard")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8050)
    parser.add_argument("--database", default=os.environ.get("DATABASE_URL"),
                        help=f"SQLAlchemy URL or SQLite file (default {store.DEFAULT_SQLITE_PATH})")
    parser.add_argument("--demo-records", type=int, default=DEFAULT_DEMO_RECORDS,
                        help="demo records added when the store is empty")
    parser.add_argument("--auth-config", default=config_path_from_env(), metavar="PATH",
                        help="sign-in configuration (TOML; default VA_AUTH_CONFIG); required "
                             "to listen on anything but loopback")
    args = parser.parse_args(argv)
    try:
        auth_config = load_config(args.auth_config) if args.auth_config else None
    except AuthConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if auth_config is None and not is_loopback(args.host):
        print(f"error: refusing to listen on {args.host} without sign-in: anyone who can reach "
              "this address would see the data. Create an auth configuration "
              "(python -m dashboard.auth init DIR) and pass --auth-config DIR/auth.toml "
              "(or set VA_AUTH_CONFIG), or listen on 127.0.0.1. See docs/security.md.",
              file=sys.stderr)
        return 2
    try:
        ensure_data(args.database, args.demo_records)
    except store.StoreError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    app = create_app(args.database, auth_config)
    serve_locally(app.server, args.host, args.port, auth_config is not None)
    return 0


def serve_locally(server, host: str, port: int, sign_in: bool) -> None:
    """Serve with the built-in server (never in debug mode, whatever DASH_DEBUG says).

    The built-in server is meant for one person on this computer; Flask's red "development
    server" warning is replaced by a plain note saying so and where serving others is
    described (docs/deployment.md: gunicorn ``app:server`` behind a proxy).
    """
    from werkzeug.serving import make_server

    local = make_server(host, port, server, threaded=True)
    print(f"dashboard on http://{host}:{port}/"
          + (" (sign-in required)" if sign_in else " (no sign-in: this computer only)"),
          flush=True)
    print("This is the local server, for use on this computer. To serve others, run it with "
          "gunicorn as described in docs/deployment.md. Press Ctrl+C to stop.", flush=True)
    try:
        local.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        local.server_close()


def wsgi_auth_config() -> AuthConfig | None:
    """The auth configuration of the WSGI app (``VA_AUTH_CONFIG``), or None with a warning."""
    path = config_path_from_env()
    if path is None:
        logging.getLogger("dashboard").warning(
            "VA_AUTH_CONFIG is not set: sign-in is disabled and only loopback clients "
            "(127.0.0.1, ::1, not through a proxy) are answered; others get 403")
        return None
    return load_config(path)  # an invalid configuration stops the server with its message


def wsgi_server():
    """The Flask server of the WSGI app, after opening the store.

    The store is opened before any request is served, so a worker over an unreachable or
    foreign database fails to boot with the store's message (gunicorn then stops) instead of
    answering every request with an error.
    """
    database = os.environ.get("DATABASE_URL")
    auth_config = wsgi_auth_config()
    try:
        store.record_count(database)
    except store.StoreError as error:
        logging.getLogger("dashboard").error("error: %s", error)
        raise RuntimeError(str(error)) from None  # the message only: no driver chain
    return create_app(database, auth_config).server


def __getattr__(name: str):
    # ``app.server`` for WSGI servers, built on first access; the store comes from DATABASE_URL,
    # sign-in from VA_AUTH_CONFIG.
    if name == "server":
        return wsgi_server()
    raise AttributeError(f"module 'app' has no attribute {name!r}")


if __name__ == "__main__":
    sys.exit(main())
