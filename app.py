"""Run the dashboard: ``python app.py [--host H] [--port P] [--database URL_OR_PATH]``.

When the store is empty it is first filled with the synthetic demo dataset.
``app.server`` is the WSGI application for production servers (e.g. gunicorn ``app:server``).
"""

from __future__ import annotations

import argparse
import os
import sys

from dashboard.app_factory import create_app
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
    args = parser.parse_args(argv)
    try:
        ensure_data(args.database, args.demo_records)
    except store.StoreError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    app = create_app(args.database)
    print(f"dashboard on http://{args.host}:{args.port}/", flush=True)
    app.run(host=args.host, port=args.port, debug=False)
    return 0


def __getattr__(name: str):
    # ``app.server`` for WSGI servers, built on first access; the store comes from DATABASE_URL.
    if name == "server":
        return create_app(os.environ.get("DATABASE_URL")).server
    raise AttributeError(f"module 'app' has no attribute {name!r}")


if __name__ == "__main__":
    sys.exit(main())
