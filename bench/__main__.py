"""``python -m bench [--records N] [--json OUT] [--runs R] [--pages PATH ...] [--only M ...]``."""

from __future__ import annotations

import argparse
import sys

from bench import DEFAULT_RECORDS, DEFAULT_RUNS, DEFAULT_SEED
from bench.runner import MEASURES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--records", type=int, default=DEFAULT_RECORDS,
                        help=f"demo records to generate (default {DEFAULT_RECORDS:,})")
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS,
                        help=f"runs per cold/warm page median (default {DEFAULT_RUNS})")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="demo data seed")
    parser.add_argument("--json", metavar="OUT", help="also write the table as JSON to OUT")
    parser.add_argument("--pages", nargs="*", metavar="PATH",
                        help="only these page paths (e.g. / /costs); default every page")
    parser.add_argument("--only", nargs="*", metavar="MEASURE", choices=MEASURES,
                        help="only these measures after the import "
                             f"({', '.join(MEASURES)}); default all")
    args = parser.parse_args(argv)
    if args.records < 1 or args.runs < 1:
        parser.error("--records and --runs must be positive")
    from bench.runner import run

    return run(records=args.records, runs=args.runs, seed=args.seed, json_out=args.json,
               pages=args.pages, only=args.only)


if __name__ == "__main__":
    sys.exit(main())
