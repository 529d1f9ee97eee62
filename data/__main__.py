"""Command line of the data layer: ``python -m data COMMAND``.

Commands
--------
import PATH [PATH ...] [--json] [--replace] [--memory-limit MB] [--time-limit S] [--no-limits]
    Import export files; one batch per file. Exit status 0 when every row was accepted or a
    duplicate, 1 when some rows were rejected or conflicted, 2 when a file was refused whole.
    Each file is imported in a child process with the limits of data.limits (columns, rows,
    uncompressed size, memory, time; VA_IMPORT_* variables); --no-limits lifts them all and
    imports in this process.
rejected BATCH --csv OUT
    Export a batch's quarantined rows, with their reasons, for correction (text cells that a
    spreadsheet would run as a formula get a leading apostrophe).
batches
    List import batches.
demo [--records N] [--seed S] [--output FILE]
    Generate the synthetic demo dataset into the store (a batch marked synthetic) or a file.
remove-demo [--yes]
    Remove the records of every synthetic (demo) batch, audited; without --yes only says what
    would be removed (exit status 1 then, 0 once removed or when there is nothing to remove).
dictionary [--output FILE]
    Print the data dictionary as Markdown.
info
    Where the store is, its schema version and record count.
audit verify
    Check the audit log's hash chain. Exit status 0 when intact, 1 when broken (the message
    names the first broken link), 2 when the store cannot be opened.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from data import store
from data.dictionary import dictionary_markdown
from data.importer import (
    ImportRefused,
    ImportResult,
    default_actor,
    import_dataframe,
    import_file,
    load_import_listeners,
    run_import_listeners,
)
from data.isolation import import_file_isolated
from data.limits import ImportLimits


def _summary(result: ImportResult) -> str:
    lines = [
        f"{result.file_name}: {result.rows_read} rows read → {result.accepted} accepted, "
        f"{result.rejected} rejected, {result.duplicates} duplicates, {result.conflicts} conflicts"
        + (f" ({result.replaced} replaced stored records)" if result.replaced else ""),
    ]
    if result.batch_id is not None:
        lines.append(f"  batch {result.batch_id}" + (" (synthetic)" if result.synthetic else ""))
    if result.identical_to_batch is not None:
        lines.append(f"  identical to batch {result.identical_to_batch}: nothing changed")
    if result.top_coded_ages:
        lines.append(f"  {result.top_coded_ages} ages above 89 recorded as 90 (HIPAA Safe Harbor)")
    if result.ignored_columns:
        lines.append("  columns not in the data dictionary (not stored): "
                     + ", ".join(result.ignored_columns))
    if result.reasons:
        lines.append("  top rejection reasons:")
        lines += [f"    {count:>7}  {reason}" for reason, count in list(result.reasons.items())[:10]]
        lines.append("  first rejected rows:")
        for reason in result.sample_reasons[:8]:
            value = "" if reason.value is None else f" (value {reason.value!r})"
            lines.append(f"    row {reason.row}, column {reason.field}, rule {reason.rule}{value}: "
                         f"{reason.message}")
        if result.batch_id is not None:
            lines.append(f"  export them for correction: python -m data rejected {result.batch_id} "
                         f"--csv rejected_{result.batch_id}.csv")
    return "\n".join(lines)


def cmd_import(args: argparse.Namespace) -> int:
    status = 0
    results = []
    actor = default_actor("cli")
    try:
        limits = import_limits(args)
        load_import_listeners()
    except (ValueError, ImportError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for path in args.paths:
        try:
            if args.no_limits:
                result = import_file(path, args.database, replace=args.replace, actor=actor,
                                     limits=limits)
            else:
                result = import_file_isolated(path, args.database, replace=args.replace,
                                              actor=actor, limits=limits, progress=None,
                                              time_setting="VA_IMPORT_SECONDS, --time-limit")
        except (ImportRefused, store.StoreError) as refused:
            status = 2
            if args.json:
                results.append({"file": path, "refused": True, "error": str(refused)})
            else:
                print(f"error: {refused}", file=sys.stderr)
            continue
        except Exception as error:  # noqa: BLE001 - a last resort: a message, never a traceback
            # The batch's transaction was rolled back, so nothing of this file was stored.
            status = 2
            message = (f"{path}: the import failed unexpectedly ({type(error).__name__}: "
                       f"{str(error)[:300]}). Nothing of this file was stored; please report it.")
            if args.json:
                results.append({"file": path, "refused": True, "error": message})
            else:
                print(f"error: {message}", file=sys.stderr)
            continue
        if result.rejected or result.conflicts:
            status = max(status, 1)
        run_import_listeners(args.database, result)  # e.g. quality alerts (VA_IMPORT_LISTENERS)
        results.append(result.to_json_dict())
        if not args.json:
            print(_summary(result))
    if args.json:
        print(json.dumps(results[0] if len(results) == 1 else results, indent=2))
    return status


def import_limits(args: argparse.Namespace) -> ImportLimits:
    """The limits of ``import``: the environment's (``VA_IMPORT_*``), the options over them."""
    if args.no_limits:
        return ImportLimits.unlimited()
    limits = ImportLimits.from_environment()
    if args.memory_limit is not None:
        limits = dataclasses.replace(limits, memory_mb=args.memory_limit or None)
    if args.time_limit is not None:
        limits = dataclasses.replace(limits, seconds=args.time_limit or None)
    return limits


def cmd_rejected(args: argparse.Namespace) -> int:
    from data.batches import batch_exists, quarantine_table
    from data.spreadsheet import safe_csv

    if not batch_exists(args.batch, args.database):
        print(f"error: there is no import batch {args.batch} (see: python -m data batches)",
              file=sys.stderr)
        return 2
    # Neutralised against formula injection: the values came from an untrusted file.
    table = quarantine_table(args.batch, args.database)
    text = safe_csv(table)
    if args.csv == "-":
        sys.stdout.write(text)
    else:
        Path(args.csv).write_text(text, encoding="utf-8")
        print(f"{len(table)} quarantined rows of batch {args.batch} written to {args.csv}")
    return 0


def cmd_batches(args: argparse.Namespace) -> int:
    engine = store.get_engine(args.database)
    with engine.connect() as connection:
        frame = pd.read_sql_query(sa.select(store.import_batches).order_by(
            store.import_batches.c.batch_id), connection)
    if frame.empty:
        print("no import batches yet")
    else:
        print(frame.drop(columns=["sha256", "ignored_columns"]).to_string(index=False))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from data.demo import demo_records

    frame = demo_records(args.records, seed=args.seed)
    if args.output:
        output = Path(args.output)
        writers = {".csv": lambda: frame.to_csv(output, index=False),
                   ".parquet": lambda: frame.to_parquet(output, index=False),
                   ".xlsx": lambda: frame.to_excel(output, index=False)}
        if output.suffix.lower() not in writers:
            print("error: --output must end in .csv, .parquet or .xlsx", file=sys.stderr)
            return 2
        writers[output.suffix.lower()]()
        print(f"{len(frame)} synthetic records (seed {args.seed}) written to {output}")
        return 0
    result = import_dataframe(frame, f"demo-{args.records}-seed{args.seed}", args.database,
                              synthetic=True, actor=default_actor("cli"))
    print(_summary(result))
    return 0 if result.rejected == 0 else 1


def cmd_remove_demo(args: argparse.Namespace) -> int:
    from data.batches import remove_synthetic_batches, synthetic_batches

    demo = synthetic_batches(args.database)
    if demo.empty:
        print("no synthetic (demo) batch holds records: nothing to remove")
        return 0
    listing = ", ".join(f"batch {row.batch_id} ({row.file_name}, {row.records:,} records)"
                        for row in demo.itertuples())
    if not args.yes:
        print(f"would remove {int(demo['records'].sum()):,} synthetic records: {listing}.\n"
              "Run again with --yes to remove them (written to the audit log).")
        return 1
    result = remove_synthetic_batches(args.database, default_actor("cli"))
    print(f"removed {result.records:,} synthetic records and {result.quarantined:,} quarantined "
          f"rows of batch {', '.join(map(str, result.batch_ids))}; the batches are kept in the "
          "history, marked removed")
    return 0


def cmd_dictionary(args: argparse.Namespace) -> int:
    text = dictionary_markdown()
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"data dictionary written to {args.output}")
    else:
        print(text)
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    url = store.database_url(args.database)
    print(f"store: {store.describe(url)}")
    print(f"schema version: {store.schema_version(args.database)}")
    print(f"records: {store.record_count(args.database)}")
    return 0


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from data.audit import verify_chain

    check = verify_chain(args.database)
    print(check.message(), file=sys.stdout if check.intact else sys.stderr)
    return 0 if check.intact else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m data", description=__doc__.split("\n")[0])
    parser.add_argument("--database", help="SQLAlchemy URL or SQLite file (default: $DATABASE_URL "
                        f"or {store.DEFAULT_SQLITE_PATH})")
    # The same flag is accepted after the command too (SUPPRESS keeps the global value otherwise).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--database", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("import", parents=[common], help="import export files (CSV, .xlsx, .parquet)")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--json", action="store_true", help="print the accounting as JSON")
    p.add_argument("--replace", action="store_true",
                   help="let rows replace stored records with the same record_id")
    p.add_argument("--memory-limit", type=int, metavar="MB",
                   help="memory (address space) of the importing child process in MB; 0 lifts "
                   "it (default $VA_IMPORT_MEMORY_MB or 4096)")
    p.add_argument("--time-limit", type=float, metavar="SECONDS",
                   help="time of the importing child process; 0 lifts it (default "
                   "$VA_IMPORT_SECONDS or 3600)")
    p.add_argument("--no-limits", action="store_true",
                   help="lift every limit (columns, rows, uncompressed size, memory, time) and "
                   "import in this process: only for files you trust")
    p.set_defaults(func=cmd_import)

    p = commands.add_parser("rejected", parents=[common], help="export a batch's quarantined rows")
    p.add_argument("batch", type=int, metavar="BATCH")
    p.add_argument("--csv", required=True, metavar="OUT", help="output CSV file, or - for stdout")
    p.set_defaults(func=cmd_rejected)

    p = commands.add_parser("batches", parents=[common], help="list import batches")
    p.set_defaults(func=cmd_batches)

    p = commands.add_parser("demo", parents=[common], help="generate the synthetic demo dataset")
    p.add_argument("--records", type=int, default=5000)
    p.add_argument("--seed", type=int, default=20240601)
    p.add_argument("--output", help="write to a file (.csv/.parquet/.xlsx) instead of the store")
    p.set_defaults(func=cmd_demo)

    p = commands.add_parser("remove-demo", parents=[common],
                            help="remove the synthetic (demo) batches' records, audited")
    p.add_argument("--yes", action="store_true", help="remove them (otherwise only list them)")
    p.set_defaults(func=cmd_remove_demo)

    p = commands.add_parser("dictionary", parents=[common], help="print the data dictionary (Markdown)")
    p.add_argument("--output", help="write to this file")
    p.set_defaults(func=cmd_dictionary)

    p = commands.add_parser("info", parents=[common], help="show the store")
    p.set_defaults(func=cmd_info)

    p = commands.add_parser("audit", parents=[common], help="check the audit log")
    checks = p.add_subparsers(dest="audit_command", required=True)
    verify = checks.add_parser("verify", parents=[common],
                               help="verify the hash chain; exit 1 at the first broken link")
    verify.set_defaults(func=cmd_audit_verify)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except store.StoreError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
