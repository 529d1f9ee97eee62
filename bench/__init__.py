"""Performance benchmark of issue 6: ``python -m bench [--records N] [--json OUT]``.

Measures only (no optimisation): import, load, app start, every page's filter-change update,
the adjusted VP/KP comparison and a single-pass polars reference for the Overview numbers.
Each heavy measure runs in its own subprocess so its timings and peak memory are its own.
See ``bench/README.md``.
"""

from __future__ import annotations

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CACHE_DIR = Path(__file__).resolve().parent / ".cache"
DEFAULT_RECORDS = 1_000_000
DEFAULT_RUNS = 5
DEFAULT_SEED = 6
