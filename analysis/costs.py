"""Procedure costs: price year and currency normalisation, summaries, cost per responder,
ICER, net-benefit regression, adjusted ratio.

Costs are recorded in each record's own currency (``cost`` in ``currency``, ISO 4217) and in
the prices of their procedure year. Every function here first brings them to one price year
with a price index per country (default: the latest year of the table), then converts them to
one reporting currency at that year's annual-average market exchange rates or purchasing
power parities (PPP) (:func:`normalise_costs`; the CCEMG–EPPI-Centre converter's order,
Shemilt et al. 2010), from tables that ship with the project (``data/reference/``) and that
the user can replace. To run several
analyses on one selection, convert once with :func:`convert_costs` and pass the result as
``conversion=`` (the dashboard does; at a million records a conversion takes ~30 ms).

Conventions
-----------
Kyphoplasty (KP) is compared with vertebroplasty (VP, the reference): every difference is
KP − VP and every ratio is KP / VP.

Methods
-------
* **Summaries report arithmetic means.** Budgets depend on the mean cost, so the mean (not the
  median, nor a geometric mean from a log-scale analysis) is the quantity of interest
  (Thompson & Barber 2000 [1]_; Barber & Thompson 2004 [2]_). Its CI is a nonparametric
  bootstrap (BCa by default; Efron & Tibshirani 1993 [3]_) computed with
  :func:`scipy.stats.bootstrap` and a fixed seed; above 5,000 values per group the
  t-interval is used (the central limit theorem makes the sampling distribution of a mean of
  that many costs very nearly normal, and the bootstrap would only add run time).
* **Incremental cost per additional responder** (ICER): Δcost / Δresponse with a bootstrap
  stratified by procedure that resamples patients, keeping each patient's cost and response
  together. The ICER has no finite variance when Δresponse can be 0; its interval is only
  reported when the Δresponse interval excludes 0, and the cost-effectiveness plane
  quadrant probabilities are always reported (Briggs, O'Brien & Blackhouse 2002 [4]_).
* **Net-benefit regression** (:func:`net_benefit_regression`; Hoch, Briggs & Willan 2002):
  covariate-adjusted Δcost and Δresponse from two linear models on one design (fitted once),
  incremental net benefit and the cost-effectiveness acceptability curve (Fenwick, Claxton &
  Sculpher 2001) at any willingness to pay as linear combinations, cluster-robust by facility;
  a point ICER (Fieller interval) only where it is a defined cost per responder.
* **Adjusted cost ratio**: gamma GLM with log link, exp(coefficient of KP) = ratio of mean
  costs at equal covariates (Manning & Mullahy 2001 [5]_; Barber & Thompson 2004 [2]_), with
  t-based inference (``fit(use_t=True)``) as R's ``glm`` does for the Gamma family.

Rate tables
-----------
``data/reference/exchange_rates.csv`` (``year, currency, units_per_usd, source``) and
``data/reference/ppp.csv`` (``year, country, currency, ppp_per_usd, source``),
``data/reference/price_index.csv`` (``year, country, currency, index, source``); see
``data/reference/README.md`` for their sources, dates and how to replace them. A different
file is chosen by ``CostOptions(rates_path=..., ppp_path=...)`` or the environment variables
``VA_EXCHANGE_RATES`` / ``VA_PPP_FACTORS`` / ``VA_PRICE_INDEX`` (``price_index_path=``).

References
----------
.. [1] Thompson SG, Barber JA. How should cost data in pragmatic randomised trials be
   analysed? BMJ 2000;320:1197-1200.
.. [2] Barber J, Thompson S. Multiple regression of cost data: use of generalised linear
   models. J Health Serv Res Policy 2004;9:197-204.
.. [3] Efron B, Tibshirani RJ. An Introduction to the Bootstrap. Chapman & Hall 1993
   (ch. 13-14: percentile and BCa intervals).
.. [4] Briggs AH, O'Brien BJ, Blackhouse G. Thinking outside the box: recent advances in the
   analysis and presentation of uncertainty in cost-effectiveness studies. Annu Rev Public
   Health 2002;23:377-401.
.. [5] Manning WG, Mullahy J. Estimating log models: to transform or not to transform?
   J Health Econ 2001;20:461-494.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
import re
import warnings
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.stats as st
from numpy.typing import NDArray

from analysis._grouping import group_codes
from analysis._kernels import _fit_gamma_log
from analysis._results import CountedText, Result
from analysis.errors import AnalysisError, InsufficientDataError

__all__ = [
    "AdjustedCostRatio",
    "CostConversion",
    "CostOptions",
    "IncrementalCost",
    "NetBenefit",
    "RateTableError",
    "adjusted_cost_ratio",
    "convert_costs",
    "converted_costs",
    "cost_per_responder",
    "cost_summary",
    "exchange_rates",
    "incremental_cost_per_responder",
    "net_benefit_regression",
    "normalise_costs",
    "ppp_factors",
    "price_index",
]

REFERENCE_DIR = Path(__file__).resolve().parent.parent / "data" / "reference"
DEFAULT_EXCHANGE_RATES = REFERENCE_DIR / "exchange_rates.csv"
DEFAULT_PPP_FACTORS = REFERENCE_DIR / "ppp.csv"
DEFAULT_PRICE_INDEX = REFERENCE_DIR / "price_index.csv"
EXCHANGE_RATES_ENV = "VA_EXCHANGE_RATES"
PPP_FACTORS_ENV = "VA_PPP_FACTORS"
PRICE_INDEX_ENV = "VA_PRICE_INDEX"

VP, KP = "vertebroplasty", "kyphoplasty"

#: Above this many costs in a group, :func:`cost_summary` uses the t-interval.
CLT_MIN_N = 5000
#: Above this many patients in total, :func:`incremental_cost_per_responder` simulates the
#: arm means from their (bivariate) normal sampling distribution instead of resampling.
ICER_RESAMPLE_MAX_N = 100_000
# Resampled values materialised at once by the vectorised bootstraps (32 MB of int64).
_BLOCK_VALUES = 4_000_000

_EXCHANGE_COLUMNS = ("year", "currency", "units_per_usd", "source")
_PPP_COLUMNS = ("year", "country", "currency", "ppp_per_usd", "source")
_INDEX_COLUMNS = ("year", "country", "currency", "index", "source")


# --------------------------------------------------------------------------------------------
# Rate tables
# --------------------------------------------------------------------------------------------


class RateTableError(AnalysisError):
    """A rate table file is missing or malformed.

    Parameters
    ----------
    path : path-like
        The file.
    line : int or None
        Line of the file (the header is line 1), or None for a problem with the whole file.
    problem : str
        What is wrong, in plain words.
    """

    def __init__(self, path: str | os.PathLike[str], line: int | None, problem: str) -> None:
        self.path = str(path)
        self.line = line
        self.problem = problem
        where = f"{self.path}, line {line}" if line is not None else self.path
        super().__init__(f"rate table {where}: {problem}")


def _resolve(path: str | os.PathLike[str] | None, env: str, default: Path) -> Path:
    if path is not None:
        return Path(path)
    from_env = os.environ.get(env, "").strip()
    return Path(from_env) if from_env else default


def _read_rows(path: Path, columns: tuple[str, ...]) -> list[tuple[int, dict[str, str]]]:
    """Rows of a CSV table with their file line numbers; header checked."""
    if not path.is_file():
        raise RateTableError(path, None, "file not found")
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None:
                raise RateTableError(path, None, "the file is empty")
            names = [name.strip().lower() for name in header]
            missing = [name for name in columns if name not in names]
            if missing:
                raise RateTableError(
                    path, 1, f"missing column(s) {', '.join(missing)}; the header must name "
                    f"{', '.join(columns)}")
            rows: list[tuple[int, dict[str, str]]] = []
            for values in reader:
                if not values or all(not value.strip() for value in values):
                    continue
                if len(values) != len(names):
                    raise RateTableError(
                        path, reader.line_num,
                        f"{len(values)} fields where the header has {len(names)} (a comma in "
                        "an unquoted source text?)")
                rows.append((reader.line_num, dict(zip(names, (v.strip() for v in values),
                                                       strict=True))))
    except UnicodeDecodeError as exc:
        raise RateTableError(path, None, f"not UTF-8 text ({exc.reason})") from exc
    except csv.Error as exc:
        raise RateTableError(path, None, f"not a readable CSV file ({exc})") from exc
    if not rows:
        raise RateTableError(path, None, "the table has no rows")
    return rows


def _parse_year(path: Path, line: int, text: str) -> int:
    if not re.fullmatch(r"\d{4}", text):
        raise RateTableError(path, line, f"year {text!r} is not a four-digit year")
    return int(text)


def _parse_code(path: Path, line: int, text: str, field: str, letters: int) -> str:
    code = text.upper()
    if not re.fullmatch(rf"[A-Z]{{{letters}}}", code):
        standard = "ISO 4217" if letters == 3 else "ISO 3166-1 alpha-2"
        raise RateTableError(path, line, f"{field} {text!r} is not an {standard} code "
                             f"({letters} letters)")
    return code


def _parse_rate(path: Path, line: int, text: str, field: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise RateTableError(path, line, f"{field} {text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise RateTableError(path, line, f"{field} must be a positive number, got {text!r}")
    return value


def _file_key(path: Path) -> tuple[str, int, int]:
    resolved = path.resolve()
    try:
        stat = resolved.stat()
    except OSError:
        return str(resolved), -1, -1
    return str(resolved), stat.st_mtime_ns, stat.st_size


@lru_cache(maxsize=16)
def _exchange_table(key: tuple[str, int, int]) -> pd.DataFrame:
    path = Path(key[0])
    records = []
    seen: dict[tuple[int, str], int] = {}
    for line, row in _read_rows(path, _EXCHANGE_COLUMNS):
        year = _parse_year(path, line, row["year"])
        currency = _parse_code(path, line, row["currency"], "currency", 3)
        rate = _parse_rate(path, line, row["units_per_usd"], "units_per_usd")
        if not row["source"]:
            raise RateTableError(path, line, "source is empty: every rate needs its source")
        if currency == "USD" and rate != 1.0:
            raise RateTableError(path, line, f"USD must be 1 unit per US dollar, got {rate:g}")
        if (year, currency) in seen:
            raise RateTableError(path, line, f"second row for {currency} in {year} (first on "
                                 f"line {seen[year, currency]}); keep one row per year and "
                                 "currency")
        seen[year, currency] = line
        records.append((year, currency, rate, row["source"]))
    frame = pd.DataFrame(records, columns=list(_EXCHANGE_COLUMNS))
    frame["year"] = frame["year"].astype("int64")
    frame.attrs["path"] = str(path)
    return frame


@lru_cache(maxsize=16)
def _ppp_table(key: tuple[str, int, int]) -> pd.DataFrame:
    path = Path(key[0])
    records = []
    seen: dict[tuple[int, str], int] = {}
    for line, row in _read_rows(path, _PPP_COLUMNS):
        year = _parse_year(path, line, row["year"])
        country = _parse_code(path, line, row["country"], "country", 2)
        currency = _parse_code(path, line, row["currency"], "currency", 3)
        factor = _parse_rate(path, line, row["ppp_per_usd"], "ppp_per_usd")
        if not row["source"]:
            raise RateTableError(path, line, "source is empty: every factor needs its source")
        if country == "US" and (currency != "USD" or factor != 1.0):
            raise RateTableError(path, line, "US must be USD with factor 1 (the international "
                                 "dollar is the US dollar)")
        if (year, country) in seen:
            raise RateTableError(path, line, f"second row for {country} in {year} (first on "
                                 f"line {seen[year, country]}); keep one row per year and "
                                 "country")
        seen[year, country] = line
        records.append((year, country, currency, factor, row["source"]))
    frame = pd.DataFrame(records, columns=list(_PPP_COLUMNS))
    frame["year"] = frame["year"].astype("int64")
    frame.attrs["path"] = str(path)
    return frame


@lru_cache(maxsize=16)
def _index_table(key: tuple[str, int, int]) -> pd.DataFrame:
    path = Path(key[0])
    records = []
    seen: dict[tuple[int, str], int] = {}
    currency_of: dict[str, tuple[str, int]] = {}
    for line, row in _read_rows(path, _INDEX_COLUMNS):
        year = _parse_year(path, line, row["year"])
        country = _parse_code(path, line, row["country"], "country", 2)
        currency = _parse_code(path, line, row["currency"], "currency", 3)
        value = _parse_rate(path, line, row["index"], "index")
        if not row["source"]:
            raise RateTableError(path, line, "source is empty: every index value needs its "
                                 "source")
        if (year, country) in seen:
            raise RateTableError(path, line, f"second row for {country} in {year} (first on "
                                 f"line {seen[year, country]}); keep one row per year and "
                                 "country")
        first = currency_of.setdefault(country, (currency, line))
        if first[0] != currency:
            raise RateTableError(path, line, f"{country} is in {currency} here but in "
                                 f"{first[0]} on line {first[1]}: one currency per country")
        seen[year, country] = line
        records.append((year, country, currency, value, row["source"]))
    frame = pd.DataFrame(records, columns=list(_INDEX_COLUMNS))
    frame["year"] = frame["year"].astype("int64")
    frame.attrs["path"] = str(path)
    return frame


def exchange_rates(path: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """Load and validate the annual-average market exchange-rate table.

    Parameters
    ----------
    path : path-like, optional
        A CSV file with columns ``year, currency, units_per_usd, source`` (national currency
        units per US dollar, annual average). Default: the environment variable
        ``VA_EXCHANGE_RATES`` if set, else the shipped ``data/reference/exchange_rates.csv``.

    Returns
    -------
    pandas.DataFrame
        One row per year and currency; ``attrs["path"]`` names the file read.

    Raises
    ------
    RateTableError
        The file is missing, lacks a column, or a row has a bad year, a currency that is not
        three letters, a non-positive or non-numeric rate, an empty source, a USD rate other
        than 1, or repeats a year and currency. The message names the file and line.

    Examples
    --------
    >>> table = exchange_rates()
    >>> sorted(table.columns)
    ['currency', 'source', 'units_per_usd', 'year']
    >>> bool((table.units_per_usd > 0).all())
    True
    """
    resolved = _resolve(path, EXCHANGE_RATES_ENV, DEFAULT_EXCHANGE_RATES)
    return _exchange_table(_file_key(resolved)).copy()


def ppp_factors(path: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """Load and validate the PPP conversion-factor table (GDP, LCU per international $).

    Parameters
    ----------
    path : path-like, optional
        A CSV file with columns ``year, country, currency, ppp_per_usd, source``. Default: the
        environment variable ``VA_PPP_FACTORS`` if set, else the shipped
        ``data/reference/ppp.csv``.

    Returns
    -------
    pandas.DataFrame
        One row per year and country; ``attrs["path"]`` names the file read.

    Raises
    ------
    RateTableError
        As for :func:`exchange_rates`, with one row per year and country, two-letter country
        codes, and US = USD with factor 1.

    Examples
    --------
    >>> table = ppp_factors()
    >>> table.loc[table.country == "US", "ppp_per_usd"].unique().tolist()
    [1.0]
    """
    resolved = _resolve(path, PPP_FACTORS_ENV, DEFAULT_PPP_FACTORS)
    return _ppp_table(_file_key(resolved)).copy()


def price_index(path: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """Load and validate the price-index table used to express costs in one price year.

    Parameters
    ----------
    path : path-like, optional
        A CSV file with columns ``year, country, currency, index, source``: an annual-average
        price index (CPI or GDP deflator) per country, in any base (only ratios within a
        country are used), and the currency whose amounts it deflates. Default: the
        environment variable ``VA_PRICE_INDEX`` if set, else the shipped
        ``data/reference/price_index.csv``.

    Returns
    -------
    pandas.DataFrame
        One row per year and country; ``attrs["path"]`` names the file read.

    Raises
    ------
    RateTableError
        As for :func:`ppp_factors`, plus a country listed with two currencies.

    Examples
    --------
    >>> table = price_index()
    >>> sorted(table.country.unique())
    ['DE', 'FR', 'GB', 'IN', 'US']
    >>> int(table.year.max())
    2024
    """
    resolved = _resolve(path, PRICE_INDEX_ENV, DEFAULT_PRICE_INDEX)
    return _index_table(_file_key(resolved)).copy()


# --------------------------------------------------------------------------------------------
# Options and conversion
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class CostOptions:
    """How costs are converted to one reporting currency.

    Parameters
    ----------
    reporting_currency : str, default "USD"
        ISO 4217 code of the currency of every reported amount.
    method : {"exchange", "ppp"}, default "exchange"
        ``"exchange"``: annual-average market exchange rates,
        ``cost / rate[currency] * rate[reporting]`` (rates in units per US dollar).
        ``"ppp"``: purchasing power parities (GDP), ``cost / ppp[country]`` gives
        international dollars (US prices), then ``* ppp[reporting country]`` expresses them in
        the reporting currency at the prices of the reporting country. ``country`` is the
        record's facility country; a cost recorded in another currency than that country's is
        first exchanged into it at market rates.
    price_year : int or "latest" or "nominal", default "latest"
        Price year of every reported amount. Each cost is first brought from the prices of
        its procedure year to the prices of this year with the price index of the country
        whose currency it is in (``cost × index[price year] / index[procedure year]``, in the
        original currency), and only then converted to the reporting currency at the rates
        (or PPPs) of the price year: the approach of the CCEMG–EPPI-Centre cost converter
        (Shemilt et al. 2010). ``"latest"``: the latest year of the price-index table.
        ``"nominal"``: no price adjustment (each amount stays in the prices of its own year,
        converted at the rates of its procedure year).
    year : int, optional
        Rate year for every record. None (default) uses the price year, or each record's
        procedure year when ``price_year="nominal"``. When a year is not in the table the
        nearest available year is used (the earlier one on a tie) and the row's
        ``conversion_note`` says so.
    rates_path, ppp_path, price_index_path : path-like, optional
        Replacement tables (see :func:`exchange_rates`, :func:`ppp_factors`,
        :func:`price_index`).
    reporting_country : str, optional
        PPP only: the country whose price level the reporting currency stands for. Needed
        when several countries of the PPP table use the reporting currency (EUR); USD means
        US, and a currency used by a single country of the table means that country.

    Examples
    --------
    >>> CostOptions(reporting_currency="eur").reporting_currency
    'EUR'
    >>> CostOptions(method="ppp", reporting_currency="EUR", reporting_country="DE").method
    'ppp'
    >>> CostOptions(price_year="2023").price_year
    2023
    """

    reporting_currency: str = "USD"
    method: Literal["exchange", "ppp"] = "exchange"
    year: int | None = None
    rates_path: str | os.PathLike[str] | None = None
    ppp_path: str | os.PathLike[str] | None = None
    reporting_country: str | None = None
    price_year: int | Literal["latest", "nominal"] = "latest"
    price_index_path: str | os.PathLike[str] | None = None

    def __post_init__(self) -> None:
        currency = str(self.reporting_currency).strip().upper()
        if not re.fullmatch(r"[A-Z]{3}", currency):
            raise ValueError(f"reporting_currency must be an ISO 4217 code, got "
                             f"{self.reporting_currency!r}")
        object.__setattr__(self, "reporting_currency", currency)
        if self.method not in ("exchange", "ppp"):
            raise ValueError(f"method must be 'exchange' or 'ppp', got {self.method!r}")
        if self.year is not None:
            if isinstance(self.year, bool) or not isinstance(self.year, int | np.integer):
                raise ValueError(f"year must be an integer or None, got {self.year!r}")
            object.__setattr__(self, "year", int(self.year))
        price_year = self.price_year
        if isinstance(price_year, str) and price_year.strip().lower() in ("latest", "nominal"):
            object.__setattr__(self, "price_year", price_year.strip().lower())
        elif (isinstance(price_year, str) and re.fullmatch(r"\s*\d{4}\s*", price_year)) or (
                isinstance(price_year, int | np.integer) and not isinstance(price_year, bool)):
            object.__setattr__(self, "price_year", int(price_year))
        else:
            raise ValueError(f"price_year must be a four-digit year, 'latest' or 'nominal', "
                             f"got {price_year!r}")
        if self.reporting_country is not None:
            country = str(self.reporting_country).strip().upper()
            if not re.fullmatch(r"[A-Z]{2}", country):
                raise ValueError(f"reporting_country must be an ISO 3166-1 alpha-2 code, got "
                                 f"{self.reporting_country!r}")
            object.__setattr__(self, "reporting_country", country)


@dataclasses.dataclass(frozen=True, eq=False)
class CostConversion:
    """The costs of one records frame converted to one reporting currency.

    Made by :func:`convert_costs`. Pass it as ``conversion=`` to :func:`normalise_costs`,
    :func:`cost_summary`, :func:`cost_per_responder`, :func:`incremental_cost_per_responder`
    and :func:`adjusted_cost_ratio` to convert a selection once for several analyses. It
    belongs to the frame it was made from: after changing that frame's costs, currencies,
    dates or countries, convert again.

    Attributes
    ----------
    values : numpy.ndarray
        Each record's cost in the reporting currency (NaN when missing or not convertible).
    note_codes : numpy.ndarray
        Per record, the position in ``note_labels`` of how it was converted (or why not).
    note_labels : tuple of str
        The conversion notes, e.g. ``"EUR→USD exchange rate 2023"`` or ``"no cost"``.
    unconverted : dict
        Reason -> number of records that have a cost but no converted cost.
    notes : tuple of str
        Sentences for the user: unconverted rows and nearest-year substitutions.
    options : CostOptions
        The options it was converted with.
    index : pandas.Index
        The index of the records it was converted from (checked when it is passed back).
    price_year : int or None
        The price year of ``values`` (None: nominal, each record in its own year's prices).

    Examples
    --------
    >>> rows = pd.DataFrame({"cost": [1000.0, None], "currency": ["USD", None],
    ...                      "procedure_date": pd.to_datetime(["2024-05-01"] * 2)})
    >>> conversion = convert_costs(rows)
    >>> conversion.values.tolist(), conversion.n_unconverted
    ([1000.0, nan], 0)
    """

    values: NDArray[np.float64]
    note_codes: NDArray[np.intp]
    note_labels: tuple[str, ...]
    unconverted: dict[str, int]
    notes: tuple[str, ...]
    options: CostOptions = dataclasses.field(default_factory=lambda: CostOptions())
    index: pd.Index | None = None
    price_year: int | None = None

    @property
    def n_unconverted(self) -> int:
        """Records that have a cost but no converted cost."""
        return int(sum(self.unconverted.values()))


def _use_conversion(records: pd.DataFrame, options: CostOptions | None,
                    conversion: CostConversion | None) -> tuple[CostOptions, CostConversion]:
    """The options and converted costs of ``records``: ``conversion`` when given (checked to
    belong to these records and options), else a new conversion."""
    if conversion is None:
        options = options or CostOptions()
        return options, _convert(records, options)
    if not isinstance(conversion, CostConversion):
        raise TypeError(f"conversion must be a CostConversion from convert_costs(), got "
                        f"{type(conversion).__name__}")
    if options is not None and options != conversion.options:
        raise ValueError(f"options {options} differ from the options the costs were converted "
                         f"with ({conversion.options}): pass one of them, or convert again")
    index = conversion.index
    if len(conversion.values) != len(records) or (
            index is not None and index is not records.index and not index.equals(records.index)):
        raise ValueError(f"conversion was made from other records ({len(conversion.values)} "
                         f"rows) than the {len(records)} records given: call "
                         "convert_costs(records, options) for these records")
    return conversion.options, conversion


def _nearest(available: Sequence[int], year: int) -> int | None:
    if not available:
        return None
    return min(available, key=lambda y: (abs(y - year), y))


class _Rates:
    """Lookups in the loaded tables for one set of options."""

    def __init__(self, options: CostOptions) -> None:
        self.options = options
        self.reporting = options.reporting_currency
        xr = exchange_rates(options.rates_path)
        self.xr_path = xr.attrs["path"]
        self.xr: dict[str, dict[int, float]] = {}
        for year, currency, rate in zip(xr["year"], xr["currency"], xr["units_per_usd"],
                                        strict=True):
            self.xr.setdefault(currency, {})[int(year)] = float(rate)
        all_years = {int(y) for y in xr["year"]}
        self.xr["USD"] = {year: 1.0 for year in all_years}  # the base, by definition
        if self.reporting not in self.xr:
            raise ValueError(f"reporting currency {self.reporting} is not in the exchange-rate "
                             f"table {self.xr_path}")
        self.ppp: dict[str, dict[int, tuple[str, float]]] = {}
        self.reporting_country: str | None = None
        if options.method == "ppp":
            ppp = ppp_factors(options.ppp_path)
            self.ppp_path = ppp.attrs["path"]
            for year, country, currency, factor in zip(
                    ppp["year"], ppp["country"], ppp["currency"], ppp["ppp_per_usd"],
                    strict=True):
                self.ppp.setdefault(country, {})[int(year)] = (currency, float(factor))
            ppp_years = {int(y) for y in ppp["year"]}
            self.ppp.setdefault("US", {})
            for year in ppp_years:
                self.ppp["US"].setdefault(year, ("USD", 1.0))
            self.reporting_country = self._reporting_country()
        self.price_year: int | None = None
        self.index: dict[str, tuple[str, dict[int, float]]] = {}
        self.index_country_of: dict[str, str] = {}
        if options.price_year != "nominal":
            table = price_index(options.price_index_path)
            self.index_path = table.attrs["path"]
            for year, country, currency, value in zip(
                    table["year"], table["country"], table["currency"], table["index"],
                    strict=True):
                self.index.setdefault(country, (currency, {}))[1][int(year)] = float(value)
            users: dict[str, list[str]] = {}
            for country, (currency, _) in self.index.items():
                users.setdefault(currency, []).append(country)
            # A currency used by a single country of the table is deflated by that country's
            # index wherever it is recorded (USD -> US); a shared one (EUR) needs the country.
            self.index_country_of = {cur: c[0] for cur, c in users.items() if len(c) == 1}
            latest = int(table["year"].max())
            self.price_year = latest if options.price_year == "latest" else int(
                options.price_year)

    def deflator(self, currency: str, country: str,
                 year: int) -> tuple[float, str, tuple[str, int, int] | None]:
        """Factor taking an amount in ``currency`` recorded in ``country`` in ``year`` to the
        prices of the price year (same currency), a note, and (index country, year, index
        year used) when the index lacks ``year`` and the nearest year stands in."""
        target = self.price_year
        assert target is not None
        if country in self.index and self.index[country][0] == currency:
            source = country
        elif currency in self.index_country_of:
            source = self.index_country_of[currency]
        else:
            where = f" ({country})" if country else ""
            return (math.nan, f"{currency}{where}: no price index in the table for this "
                    "currency and country", None)
        by_year = self.index[source][1]
        if target not in by_year:
            return math.nan, f"{source}: no price index for the price year {target}", None
        used = _nearest(sorted(by_year), year)
        assert used is not None
        factor = by_year[target] / by_year[used]
        note = f"{year} {currency} prices → {target} by the {source} price index"
        if used != year:
            note += f" (no {year} index: {used} used)"
        return factor, note, ((source, year, used) if used != year else None)

    def _reporting_country(self) -> str:
        wanted = self.options.reporting_country
        users = sorted(c for c, by_year in self.ppp.items()
                       if any(cur == self.reporting for cur, _ in by_year.values()))
        if wanted is not None:
            if wanted not in users:
                raise ValueError(f"reporting_country {wanted} has no PPP factor in "
                                 f"{self.reporting} in {self.ppp_path}")
            return wanted
        if self.reporting == "USD":
            return "US"
        if len(users) == 1:
            return users[0]
        if not users:
            raise ValueError(f"no country of the PPP table {self.ppp_path} uses "
                             f"{self.reporting}")
        raise ValueError(f"{self.reporting} is used by {', '.join(users)} in the PPP table: "
                         "pass CostOptions(reporting_country=...) to choose the price level")

    def exchange(self, currency: str, year: int, target: str) -> tuple[float, str, int | None]:
        """Factor turning an amount in ``currency`` into ``target``, a note, and the rate year
        used when it differs from ``year`` (else None)."""
        if currency == target:
            return 1.0, f"{currency} (no conversion)", None
        if currency not in self.xr:
            return math.nan, f"{currency} not in the exchange-rate table", None
        if target not in self.xr:
            return math.nan, f"{target} not in the exchange-rate table", None
        common = sorted(set(self.xr[currency]) & set(self.xr[target]))
        used = _nearest(common, year)
        if used is None:
            return (math.nan, f"no common year for {currency} and {target} in the exchange-rate "
                    "table", None)
        factor = self.xr[target][used] / self.xr[currency][used]
        note = f"{currency}→{target} exchange rate {used}"
        if used != year:
            note += f" (nearest year to {year})"
        return factor, note, (used if used != year else None)

    def purchasing_power(self, currency: str, country: str,
                         year: int) -> tuple[float, str, int | None]:
        """Factor turning an amount in ``currency`` spent in ``country`` into the reporting
        currency at PPP, a note, and the PPP year used when it differs from ``year``."""
        target_country = self.reporting_country
        assert target_country is not None
        if country == target_country and currency == self.reporting:
            return 1.0, f"{currency} ({country}, no conversion)", None
        if country not in self.ppp:
            return math.nan, f"{country}: no PPP factor in the table", None
        common = sorted(set(self.ppp[country]) & set(self.ppp[target_country]))
        used = _nearest(common, year)
        if used is None:
            return math.nan, f"no common PPP year for {country} and {target_country}", None
        local_currency, local_factor = self.ppp[country][used]
        target_currency, target_factor = self.ppp[target_country][used]
        if target_currency != self.reporting:
            return math.nan, (f"{target_country} uses {target_currency}, not {self.reporting}, "
                              f"in the PPP table for {used}"), None
        pre, pre_note = 1.0, ""
        if currency != local_currency:
            pre, pre_note, _ = self.exchange(currency, year, local_currency)
            if not math.isfinite(pre):
                return math.nan, pre_note, None
            pre_note = f"; first {pre_note}"
        factor = pre / local_factor * target_factor
        note = f"{currency} ({country})→{self.reporting} ({target_country}) PPP {used}"
        if used != year:
            note += f" (nearest year to {year})"
        return factor, note + pre_note, (used if used != year else None)


def _float_values(series: pd.Series) -> NDArray[np.float64]:
    if isinstance(series.dtype, pd.CategoricalDtype):
        series = series.astype(object)
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _codes(series: pd.Series) -> tuple[NDArray[np.intp], list[str]]:
    """Integer codes (-1 = missing) and their labels, stripped and upper-cased."""
    codes, uniques = pd.factorize(series, use_na_sentinel=True)
    labels = [str(value).strip().upper() for value in np.asarray(uniques, dtype=object)]
    return np.asarray(codes, dtype=np.intp), labels


def _calendar_years(stamps: NDArray[np.datetime64], valid: NDArray[np.bool_]) -> NDArray[np.int64]:
    """Calendar year of each timestamp (0 where not ``valid``).

    Equal to ``stamps.astype("datetime64[Y]")`` but a binary search among the few year
    boundaries of the data, several times faster than numpy's calendar conversion.
    """
    if not valid.any():
        return np.zeros(stamps.size, dtype=np.int64)
    ticks = stamps.view(np.int64)
    first = int(np.min(ticks, where=valid, initial=np.iinfo(np.int64).max))
    last = int(np.max(ticks, where=valid, initial=np.iinfo(np.int64).min))
    unit = stamps.dtype
    low = int(np.array(first).view(unit).astype("datetime64[Y]").astype(np.int64))
    high = int(np.array(last).view(unit).astype("datetime64[Y]").astype(np.int64))
    starts = np.arange(low, high + 2).astype("datetime64[Y]").astype(unit).view(np.int64)
    years = low + 1970 - 1 + np.searchsorted(starts, ticks, side="right")
    return np.where(valid, years, 0).astype(np.int64)


_NO_COST = "no cost"
_NO_CURRENCY = "cost without currency"
_NO_DATE = "no procedure date (rate year unknown)"
_NO_COUNTRY = "no country (PPP needs the facility country)"


def _convert(records: pd.DataFrame, options: CostOptions) -> CostConversion:
    """Convert ``records.cost`` to the reporting currency (vectorised over unique cases)."""
    if "cost" not in records.columns:
        raise ValueError("records have no 'cost' column")
    rates = _Rates(options)
    n = len(records)
    cost = _float_values(records["cost"])
    has_cost = ~np.isnan(cost)
    labels: list[str] = [_NO_COST, _NO_CURRENCY, _NO_DATE, _NO_COUNTRY]
    note_codes = np.zeros(n, dtype=np.intp)  # "no cost" unless set below
    values = np.full(n, np.nan)

    if "currency" in records.columns:
        cur_codes, cur_labels = _codes(records["currency"])
    else:
        cur_codes, cur_labels = np.full(n, -1, dtype=np.intp), []
    deflate = rates.price_year is not None
    if options.year is not None and not deflate:
        years = np.full(n, options.year, dtype=np.int64)
        has_year = np.ones(n, dtype=bool)
    else:
        if "procedure_date" not in records.columns:
            raise ValueError("records have no 'procedure_date' column: pass CostOptions(year=..., "
                             "price_year='nominal')" if not deflate else
                             "records have no 'procedure_date' column: the price adjustment "
                             "needs each cost's year (or pass CostOptions(price_year='nominal',"
                             " year=...))")
        dates = records["procedure_date"]
        if dates.dtype.kind == "M" and getattr(dates.dtype, "tz", None) is None:
            # datetime64 already: calendar years straight from numpy (no pandas accessor).
            stamps = dates.to_numpy()
            has_year = ~np.isnat(stamps)
            years = _calendar_years(stamps, has_year)
        else:
            year_float = pd.to_datetime(dates, errors="coerce").dt.year
            year_float = year_float.to_numpy(dtype=float, na_value=np.nan)
            has_year = ~np.isnan(year_float)
            years = np.where(has_year, year_float, 0).astype(np.int64)
    ppp = options.method == "ppp"
    if ppp and "country" not in records.columns:
        raise ValueError("records have no 'country' column (needed for PPP conversion)")
    if (ppp or deflate) and "country" in records.columns:
        country_codes, country_labels = _codes(records["country"])
    else:  # without a country, a cost is deflated by its currency's index (if unique)
        country_codes, country_labels = np.full(n, -1, dtype=np.intp), []

    missing_currency = has_cost & (cur_codes < 0)
    missing_year = has_cost & ~missing_currency & ~has_year
    missing_country = (has_cost & ~missing_currency & has_year & (country_codes < 0)) if ppp \
        else np.zeros(n, dtype=bool)
    note_codes[missing_currency] = 1
    note_codes[missing_year] = 2
    note_codes[missing_country] = 3
    ok = has_cost & ~missing_currency & ~missing_year & ~missing_country

    substituted: dict[tuple[int, int], set[str]] = {}
    index_substituted: dict[tuple[str, int, int], int] = {}
    if ok.any():
        # Whole-array arithmetic with one sentinel key (-1) for the rows that cannot be
        # converted, rather than gathering the convertible rows first: fewer passes at 1M.
        y0 = int(np.min(years, where=ok, initial=np.iinfo(np.int64).max))
        span = int(np.max(years, where=ok, initial=np.iinfo(np.int64).min)) - y0 + 1
        country_names = ["", *country_labels]  # code + 1; "" = no country recorded
        n_countries = len(country_names)
        key = ((cur_codes.astype(np.int64) * n_countries + country_codes + 1) * span
               + (years - y0))
        combo, uniques = pd.factorize(np.where(ok, key, -1))
        factors = np.full(len(uniques), np.nan)
        combo_labels = np.zeros(len(uniques), dtype=np.intp)
        combo_index_sub: dict[int, tuple[str, int, int]] = {}
        label_index = {label: i for i, label in enumerate(labels)}
        for i, k in enumerate(np.asarray(uniques, dtype=np.int64)):
            if k < 0:  # the sentinel: rows without a cost, currency, date or country
                continue
            year = int(k % span) + y0
            rest = int(k // span)
            currency = cur_labels[rest // n_countries]
            country = country_names[rest % n_countries]
            deflator, deflate_note = 1.0, ""
            if deflate:
                deflator, deflate_note, index_used = rates.deflator(currency, country, year)
                if index_used is not None:
                    combo_index_sub[i] = index_used
            rate_year = options.year if options.year is not None else (
                rates.price_year if deflate else year)
            assert rate_year is not None
            if not math.isfinite(deflator):
                factor, note, used = math.nan, deflate_note, None
            elif ppp:
                factor, note, used = rates.purchasing_power(currency, country, rate_year)
                what = f"{currency} ({country})"
            else:
                factor, note, used = rates.exchange(currency, rate_year, rates.reporting)
                what = currency
            if math.isfinite(factor) and deflate:
                note = f"{deflate_note}; {note}"
            factors[i] = deflator * factor
            combo_labels[i] = label_index.setdefault(note, len(label_index))
            if used is not None:
                substituted.setdefault((rate_year, used), set()).add(what)
        labels = list(label_index)
        values = cost * factors[combo]  # NaN for the sentinel rows
        note_codes = np.where(ok, combo_labels[combo], note_codes)
        if combo_index_sub:
            per_combo = np.bincount(combo[ok], minlength=len(uniques))
            for i, what in combo_index_sub.items():
                index_substituted[what] = index_substituted.get(what, 0) + int(per_combo[i])

    failed = has_cost & np.isnan(values)
    unconverted: dict[str, int] = {}
    if failed.any():
        counts = np.bincount(note_codes[failed], minlength=len(labels))
        unconverted = {labels[i]: int(c) for i, c in enumerate(counts) if c}
    notes = []
    if deflate:
        notes.append(f"Costs are in {rates.price_year} prices: each cost was brought from its "
                     f"procedure year to {rates.price_year} with its country's price index, "
                     f"then converted at the {rates.price_year if options.year is None else options.year} "
                     f"{'PPPs' if ppp else 'exchange rates'}.")
    # Notes that quote record counts keep them as data (CountedText): a display suppresses
    # them without parsing the prose.
    if unconverted:
        detail = "; ".join(f"{_braces(reason)}: {{u{i}}}"
                           for i, reason in enumerate(unconverted))
        notes.append(CountedText.of(
            "{failed} row(s) with a cost could not be converted to "
            f"{_braces(rates.reporting)} and are left missing ({detail})",
            failed=int(failed.sum()),
            **{f"u{i}": count for i, count in enumerate(unconverted.values())}))
    if index_substituted:
        items = sorted(index_substituted.items())
        detail = "; ".join(f"{_braces(f'{source} {year} → index of {used}')} ({{s{i}}} record(s))"
                           for i, ((source, year, used), _count) in enumerate(items))
        notes.append(CountedText.of(
            "year(s) missing from the price-index table, the nearest year's index used (those "
            f"costs are taken as if in that year's prices): {detail}",
            **{f"s{i}": count for i, (_key, count) in enumerate(items)}))
    if substituted:
        kind = "PPP" if ppp else "exchange-rate"
        detail = "; ".join(f"{year} → {used} for {', '.join(sorted(what))}"
                           for (year, used), what in sorted(substituted.items()))
        notes.append(f"year(s) missing from the {kind} table, nearest available year used: "
                     f"{detail}")
    return CostConversion(values, note_codes, tuple(labels), unconverted, tuple(notes),
                          options=options, index=records.index, price_year=rates.price_year)


def _braces(text: object) -> str:
    """``text`` safe inside a :class:`CountedText` template (literal braces doubled)."""
    return str(text).replace("{", "{{").replace("}", "}}")


def convert_costs(records: pd.DataFrame, options: CostOptions | None = None) -> CostConversion:
    """Convert every record's cost to the reporting currency once, for several analyses.

    Parameters
    ----------
    records : pandas.DataFrame
        Procedure records (see :func:`normalise_costs` for the columns needed).
    options : CostOptions, optional
        Reporting currency, method (market exchange rates or PPP), rate year and tables.

    Returns
    -------
    CostConversion
        The converted costs, how each record was converted, and the notes. Pass it as
        ``conversion=`` to the other functions of this module together with the same
        ``records``: at a million records the conversion is a good part of each analysis's
        run time. It is not kept anywhere else, so a changed frame is never matched with a
        stale conversion unless it is passed explicitly.

    Examples
    --------
    >>> rows = pd.DataFrame({"procedure": ["kyphoplasty", "vertebroplasty"] * 2,
    ...                      "cost": [9000.0, 4000.0, 11000.0, 6000.0], "currency": "USD",
    ...                      "procedure_date": pd.Timestamp("2024-05-01")})
    >>> conversion = convert_costs(rows)
    >>> cost_summary(rows, conversion=conversion, n_resamples=200)["mean"].tolist()
    [10000.0, 5000.0]
    """
    return _convert(records, options or CostOptions())


def converted_costs(records: pd.DataFrame, options: CostOptions | None = None) -> NDArray[np.float64]:
    """Each record's cost in the reporting currency as an array (NaN when missing or not
    convertible): the ``cost_reporting`` column of :func:`normalise_costs` without building
    a new frame, for callers that only need the numbers.

    Examples
    --------
    >>> rows = pd.DataFrame({"cost": [1000.0, None], "currency": ["USD", None],
    ...                      "procedure_date": pd.to_datetime(["2024-05-01"] * 2)})
    >>> converted_costs(rows).tolist()
    [1000.0, nan]
    """
    return _convert(records, options or CostOptions()).values


def normalise_costs(records: pd.DataFrame, options: CostOptions | None = None, *,
                    conversion: CostConversion | None = None) -> pd.DataFrame:
    """Add each record's cost in the reporting currency.

    Parameters
    ----------
    records : pandas.DataFrame
        Procedure records with ``cost`` and ``currency``, plus ``procedure_date`` (unless
        ``options.year`` is set) and ``country`` (PPP only).
    options : CostOptions, optional
        Reporting currency, method (market exchange rates or PPP), rate year and tables.
    conversion : CostConversion, optional
        The costs of these ``records`` already converted by :func:`convert_costs` (then
        ``options`` may be left out; if given it must be the conversion's options).

    Returns
    -------
    pandas.DataFrame
        The records (a new frame; the input is not modified) with two more columns:

        ``cost_reporting`` (float)
            The cost in ``options.reporting_currency``; NaN when there is no cost or it could
            not be converted.
        ``conversion_note`` (category)
            How the row was converted, e.g. ``"EUR→USD exchange rate 2023 (nearest year to
            2025)"``, or why it was not (``"no cost"``, ``"XYZ not in the exchange-rate
            table"``).

        Documented ``attrs``: ``n_unconverted`` (rows that have a cost but no converted
        cost), ``unconverted`` (dict reason → rows), ``notes`` (tuple of sentences for the
        user: unconverted rows and nearest-year substitutions), ``reporting_currency`` and
        ``method``.

    Notes
    -----
    Price year first (unless ``price_year="nominal"``): ``cost × index[c, P] / index[c, t]``
    with t the procedure year, P the price year and c the country whose price index deflates
    the record's currency (the record's country, or the only country of the index table using
    that currency); a missing year t uses the nearest year's index, and the notes count those
    records. Then the exchange method: ``cost / units_per_usd[currency, y] *
    units_per_usd[reporting, y]``, with y the rate year (P, or ``options.year``, or with
    ``price_year="nominal"`` the procedure year), or the nearest year for which both
    currencies have a rate. PPP method: ``cost / ppp[country, y]`` is in international
    dollars, ``* ppp[reporting country, y]`` turns them into the reporting currency; a cost
    recorded in a currency other than the country's is first exchanged into the country's
    currency as above.

    Examples
    --------
    >>> import pandas as pd
    >>> rows = pd.DataFrame({"cost": [1000.0, 2000.0, None], "currency": ["USD", "USD", None],
    ...                      "procedure_date": pd.to_datetime(["2024-05-01"] * 3)})
    >>> out = normalise_costs(rows)
    >>> out.cost_reporting.tolist()[:2]
    [1000.0, 2000.0]
    >>> out.attrs["n_unconverted"]
    0
    """
    options, conversion = _use_conversion(records, options, conversion)
    out = records.copy(deep=False)
    out["cost_reporting"] = conversion.values
    out["conversion_note"] = pd.Categorical.from_codes(
        conversion.note_codes, categories=list(conversion.note_labels)
    ).remove_unused_categories()
    out.attrs = {
        "n_unconverted": conversion.n_unconverted,
        "unconverted": dict(conversion.unconverted),
        "notes": conversion.notes,
        "reporting_currency": options.reporting_currency,
        "method": options.method,
    }
    return out


# --------------------------------------------------------------------------------------------
# Grouping helpers
# --------------------------------------------------------------------------------------------


def _as_tuple(by: str | Sequence[str] | None) -> tuple[str, ...]:
    if by is None:
        return ()
    if isinstance(by, str):
        return (by,)
    return tuple(by)


def _groups(records: pd.DataFrame, by: tuple[str, ...]) -> tuple[NDArray[np.intp], pd.DataFrame]:
    """Group number of each row and one row of keys per group (in group order)."""
    missing = [column for column in by if column not in records.columns]
    if missing:
        raise ValueError(f"records have no column(s) {', '.join(missing)} to group by")
    if not by:
        return np.zeros(len(records), dtype=np.intp), pd.DataFrame(index=[0])
    fast = _coded_groups(records, by)
    if fast is not None:
        return fast
    grouped = records.groupby(list(by), observed=True, dropna=False, sort=True)
    codes = grouped.ngroup().to_numpy(dtype=np.intp)
    keys = grouped.size().index.to_frame(index=False)
    return codes, keys


def _coded_groups(records: pd.DataFrame,
                  by: tuple[str, ...]) -> tuple[NDArray[np.intp], pd.DataFrame] | None:
    """:func:`_groups` for categorical and text columns from integer codes, without a pandas
    groupby (several times faster at a million records); None for other column types.

    Groups are numbered in the order of ``groupby(sort=True, dropna=False, observed=True)``:
    by category order (categorical) or sorted values (text), missing values last.
    """
    if len(records) == 0:
        return None
    for name in by:
        dtype = records[name].dtype
        if not isinstance(dtype, pd.CategoricalDtype | pd.StringDtype):
            return None
    return group_codes(records, by)


#: Up to this many groups :func:`_split` selects each group with a mask instead of sorting.
_SPLIT_MASK_MAX_GROUPS = 8


def _split(values: NDArray, codes: NDArray[np.intp], n_groups: int) -> list[NDArray]:
    """Each group's values, in record order."""
    if n_groups == 0:
        return []
    if n_groups <= _SPLIT_MASK_MAX_GROUPS:
        return [values[codes == g] for g in range(n_groups)]
    order = np.argsort(codes, kind="stable")
    bounds = np.cumsum(np.bincount(codes, minlength=n_groups))[:-1]
    return np.split(values[order], bounds)


# --------------------------------------------------------------------------------------------
# Cost summary
# --------------------------------------------------------------------------------------------


def _quartiles(values: NDArray[np.float64]) -> tuple[float, float, float]:
    """``np.quantile(values, [0.25, 0.5, 0.75])`` (linear), from one partition of the values.

    Only the six order statistics the three quantiles interpolate between are placed (one
    :func:`numpy.partition`, about three times faster than a full sort at 500,000 values and
    faster than the selection :func:`numpy.quantile` runs); they are interpolated with numpy's
    own formula, so the numbers are identical.
    """
    last = values.size - 1
    positions = [last * q for q in (0.25, 0.5, 0.75)]
    kth = sorted({min(math.floor(p) + step, last) for p in positions for step in (0, 1)})
    placed = np.partition(values, kth)
    out = []
    for position in positions:
        below = math.floor(position)
        t = position - below
        a, b = placed[below], placed[min(below + 1, last)]
        diff = b - a
        out.append(float(b - diff * (1 - t)) if t >= 0.5 else float(a + diff * t))
    return out[0], out[1], out[2]


def _batch(n: int) -> int:
    return max(1, _BLOCK_VALUES // max(n, 1))


def _mean_ci(values: NDArray[np.float64], level: float, n_resamples: int, seed: int,
             ci_method: str, clt_min_n: int) -> tuple[float, float, str]:
    n = values.size
    if n == 0:
        return math.nan, math.nan, "no costs"
    mean = float(values.mean())
    if n == 1:
        return math.nan, math.nan, "one cost: no interval"
    if float(values.max()) == float(values.min()):
        return mean, mean, "all costs equal: zero-width interval"
    if n > clt_min_n:
        half = st.t.ppf((1 + level) / 2, n - 1) * values.std(ddof=1) / math.sqrt(n)
        return mean - half, mean + half, f"t-interval (central limit theorem, n > {clt_min_n})"
    method = ci_method
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # degenerate-resample warnings: checked below
        result = st.bootstrap((values,), np.mean, n_resamples=n_resamples,
                              confidence_level=level, method=method, vectorized=True,
                              batch=_batch(n), rng=np.random.default_rng(seed))
        low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
        if not (math.isfinite(low) and math.isfinite(high)) and method.lower() == "bca":
            method = "percentile"  # BCa undefined (e.g. too few distinct values)
            result = st.bootstrap((values,), np.mean, n_resamples=n_resamples,
                                  confidence_level=level, method=method, vectorized=True,
                                  batch=_batch(n), rng=np.random.default_rng(seed))
            low = float(result.confidence_interval.low)
            high = float(result.confidence_interval.high)
    return low, high, f"bootstrap {method} ({n_resamples} resamples, seed {seed})"


def cost_summary(
    records: pd.DataFrame,
    by: str | Sequence[str] | None = ("procedure",),
    options: CostOptions | None = None,
    level: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
    *,
    ci_method: Literal["BCa", "percentile", "basic"] = "BCa",
    clt_min_n: int = CLT_MIN_N,
    conversion: CostConversion | None = None,
) -> pd.DataFrame:
    """Mean cost per group with its confidence interval, and median / quartiles.

    Parameters
    ----------
    records : pandas.DataFrame
        Procedure records (see :func:`normalise_costs` for the columns needed).
    by : str or sequence of str, default ("procedure",)
        Grouping columns; ``()`` or None for one overall row. Missing keys form their own
        group, so every record is counted.
    options : CostOptions, optional
        Currency conversion.
    level : float, default 0.95
        Confidence level.
    n_resamples : int, default 2000
        Bootstrap resamples.
    seed : int, default 0
        Seed of the bootstrap generator; every group restarts from it, so a group's interval
        does not depend on which other groups are shown.
    ci_method : {"BCa", "percentile", "basic"}, default "BCa"
        Bootstrap interval (:func:`scipy.stats.bootstrap`). BCa falls back to percentile when
        it is undefined.
    clt_min_n : int, default 5000
        Above this many costs in a group the t-interval replaces the bootstrap.
    conversion : CostConversion, optional
        The costs of these ``records`` already converted by :func:`convert_costs` (then
        ``options`` may be left out; if given it must be the conversion's options).

    Returns
    -------
    pandas.DataFrame
        One row per group: the group columns, ``n`` (converted costs), ``missing`` (records
        without a converted cost), ``mean``, ``mean_low``, ``mean_high``, ``median``, ``q1``,
        ``q3`` (linear interpolation), ``currency``, ``method`` (how the CI was obtained) and
        ``conversion`` (``exchange`` or ``ppp``). ``attrs["notes"]`` repeats the conversion
        notes of :func:`normalise_costs`.

    Notes
    -----
    The mean is reported because budgets depend on it (Thompson & Barber 2000). The bootstrap
    resamples costs within the group (Efron & Tibshirani 1993). For n > ``clt_min_n`` the
    interval is ``mean ± t(1-α/2, n-1) · s/√n``, which the bootstrap reproduces closely at such
    sizes and which keeps the dashboard fast (about 0.15 s for 1,000,000 records grouped by
    procedure and country).

    Examples
    --------
    >>> import pandas as pd
    >>> rows = pd.DataFrame({
    ...     "procedure": ["vertebroplasty"] * 3 + ["kyphoplasty"] * 3,
    ...     "cost": [3000.0, 3500.0, 4000.0, 7000.0, 8000.0, 9000.0], "currency": "USD",
    ...     "procedure_date": pd.Timestamp("2024-03-01")})
    >>> table = cost_summary(rows, n_resamples=500)
    >>> table[["procedure", "n", "mean", "median"]].values.tolist()
    [['kyphoplasty', 3, 8000.0, 8000.0], ['vertebroplasty', 3, 3500.0, 3500.0]]
    """
    if not 0.0 < float(level) < 1.0:
        raise ValueError(f"level must be between 0 and 1 (exclusive), got {level}")
    by = _as_tuple(by)
    codes, keys = _groups(records, by)
    options, conversion = _use_conversion(records, options, conversion)
    groups = _split(conversion.values, codes, len(keys))
    rows: list[dict[str, Any]] = []
    for values in groups:
        finite = values[~np.isnan(values)]
        low, high, method = _mean_ci(finite, float(level), int(n_resamples), int(seed),
                                     ci_method, int(clt_min_n))
        if finite.size:
            q1, median, q3 = _quartiles(finite)
            mean = float(finite.mean())
        else:
            q1 = median = q3 = mean = math.nan
        rows.append({"n": int(finite.size), "missing": int(values.size - finite.size),
                     "mean": mean, "mean_low": low, "mean_high": high, "median": float(median),
                     "q1": float(q1), "q3": float(q3), "currency": options.reporting_currency,
                     "method": method, "conversion": options.method})
    stats = pd.DataFrame(rows, columns=["n", "missing", "mean", "mean_low", "mean_high", "median",
                                        "q1", "q3", "currency", "method", "conversion"])
    table = pd.concat([keys.reset_index(drop=True), stats], axis=1) if by else stats
    table.attrs = {"notes": conversion.notes, "n_unconverted": conversion.n_unconverted}
    return table


# --------------------------------------------------------------------------------------------
# Responders
# --------------------------------------------------------------------------------------------


def _responder_status(records: pd.DataFrame, responder: Any, responders: Any) -> pd.Series:
    """Nullable boolean responder status aligned to ``records``."""
    if responders is not None:
        if responder is not None:
            raise ValueError("pass either responder (a definition) or responders (a Series), "
                             "not both")
        if isinstance(responders, pd.Series):
            status = responders
            if not status.index.equals(records.index):
                if len(status) == len(records) and not status.index.isin(records.index).any():
                    raise ValueError("responders is not aligned with records: its index shares "
                                     "no label with records.index")
                status = status.reindex(records.index)
        else:
            array = np.asarray(responders, dtype=object)
            if array.shape != (len(records),):
                raise ValueError(f"responders has {array.size} values for {len(records)} "
                                 "records")
            status = pd.Series(array, index=records.index)
    else:
        if responder is None:
            try:
                from analysis.outcomes import ResponderDefinition
            except ImportError as exc:  # pragma: no cover - depends on the outcomes module
                raise AnalysisError(
                    "no responder definition available (analysis.outcomes.ResponderDefinition "
                    "could not be imported): pass responders=<boolean Series>") from exc
            responder = ResponderDefinition()
        status = responder.is_responder(records)
        if not isinstance(status, pd.Series):
            status = pd.Series(np.asarray(status, dtype=object), index=records.index)
    if status.dtype == object or isinstance(status.dtype, pd.CategoricalDtype):
        status = status.astype(object).where(status.notna(), None)
    try:
        return status.astype("boolean")
    except (TypeError, ValueError) as exc:
        raise ValueError(f"responder status must be true/false/missing ({exc})") from exc


def cost_per_responder(
    records: pd.DataFrame,
    responder: Any = None,
    by: str | Sequence[str] | None = ("procedure",),
    options: CostOptions | None = None,
    *,
    responders: pd.Series | Sequence[bool | None] | None = None,
    conversion: CostConversion | None = None,
) -> pd.DataFrame:
    """Cost per responder by group: mean cost divided by the responder rate.

    Parameters
    ----------
    records : pandas.DataFrame
        Procedure records.
    responder : ResponderDefinition, optional
        An object with ``is_responder(records)`` returning a nullable boolean Series (see
        :mod:`analysis.outcomes`; default definition: ≥ 30% pain reduction at month 1).
    by : str or sequence of str, default ("procedure",)
        Grouping columns.
    options : CostOptions, optional
        Currency conversion.
    responders : pandas.Series or sequence, optional
        Responder status given directly (nullable boolean, aligned to ``records``) instead of
        ``responder``.
    conversion : CostConversion, optional
        The costs of these ``records`` already converted by :func:`convert_costs` (then
        ``options`` may be left out; if given it must be the conversion's options).

    Returns
    -------
    pandas.DataFrame
        The group columns, ``n`` (records with both a known responder status and a converted
        cost), ``responders``, ``responder_rate``, ``mean_cost``, ``total_cost``,
        ``cost_per_responder``, ``excluded`` (records of the group left out for a missing
        status or cost) and ``currency``.

    Notes
    -----
    Estimator, on the n complete records of a group: ``cost_per_responder = mean cost /
    responder rate = total cost / number of responders``, i.e. what is spent on the group per
    patient who responds. It is NaN when the group has no responder (undefined). Records
    without a known status or cost are excluded from both numerator and denominator, which
    assumes they are missing at random within the group.

    Examples
    --------
    >>> import pandas as pd
    >>> rows = pd.DataFrame({"procedure": ["vertebroplasty"] * 4, "cost": [1000.0] * 4,
    ...                      "currency": "USD", "procedure_date": pd.Timestamp("2024-01-02")})
    >>> table = cost_per_responder(rows, responders=[True, False, True, None])
    >>> row = table.iloc[0]
    >>> int(row.n), int(row.responders), float(row.total_cost), float(row.cost_per_responder)
    (3, 2, 3000.0, 1500.0)
    """
    by = _as_tuple(by)
    status = _responder_status(records, responder, responders)
    codes, keys = _groups(records, by)
    options, conversion = _use_conversion(records, options, conversion)
    known = status.notna().to_numpy() & ~np.isnan(conversion.values)
    is_resp = status.to_numpy(dtype=bool, na_value=False) & known
    n_groups = len(keys)
    n = np.bincount(codes, weights=known, minlength=n_groups).astype(np.int64)
    size = np.bincount(codes, minlength=n_groups)
    n_resp = np.bincount(codes, weights=is_resp, minlength=n_groups).astype(np.int64)
    total = np.bincount(codes, weights=np.where(known, conversion.values, 0.0),
                        minlength=n_groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = np.where(n > 0, n_resp / np.maximum(n, 1), np.nan)
        mean_cost = np.where(n > 0, total / np.maximum(n, 1), np.nan)
        per_responder = np.where(n_resp > 0, total / np.maximum(n_resp, 1), np.nan)
    stats = pd.DataFrame({
        "n": n, "responders": n_resp, "responder_rate": rate, "mean_cost": mean_cost,
        "total_cost": np.where(n > 0, total, np.nan), "cost_per_responder": per_responder,
        "excluded": size - n, "currency": options.reporting_currency})
    table = pd.concat([keys.reset_index(drop=True), stats], axis=1) if by else stats
    table.attrs = {"notes": conversion.notes, "n_unconverted": conversion.n_unconverted}
    return table


# --------------------------------------------------------------------------------------------
# Incremental cost per additional responder
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class IncrementalCost(Result):
    """Incremental cost per additional responder, KP versus VP.

    Attributes
    ----------
    delta_cost, delta_cost_low, delta_cost_high : float
        Difference in mean cost per patient (KP − VP) and its bootstrap percentile CI.
    delta_response, delta_response_low, delta_response_high : float
        Difference in responder rate (KP − VP, a proportion) and its CI.
    icer, icer_low, icer_high : float
        Δcost / Δresponse: extra cost per additional responder. The CI is NaN when the
        Δresponse CI includes 0 (the ratio is then unbounded), and a limit is ±inf when the
        bootstrap distribution reaches the Δresponse = 0 axis on that side.
    n_kp, n_vp : int
        Patients analysed (known procedure, converted cost and known responder status).
    interpretation : str
        Plain-language reading, including the cost-effectiveness plane quadrants.
    method : str
        How the intervals were obtained.
    prob_dominant, prob_dominated : float
        Bootstrap probability that KP is cheaper and more effective (south-east quadrant) /
        costlier and less effective (north-west quadrant).
    prob_more_costly_more_effective, prob_less_costly_less_effective : float
        North-east and south-west quadrants.
    currency : str
        Currency of the cost figures.
    """

    delta_cost: float
    delta_cost_low: float
    delta_cost_high: float
    delta_response: float
    delta_response_low: float
    delta_response_high: float
    icer: float
    icer_low: float
    icer_high: float
    n_kp: int
    n_vp: int
    interpretation: str
    method: str
    prob_dominant: float
    prob_dominated: float
    prob_more_costly_more_effective: float
    prob_less_costly_less_effective: float
    currency: str


def _equals(column: pd.Series, value: str) -> NDArray[np.bool_]:
    """``column.astype(object) == value`` as a boolean array; a categorical column compares
    its integer codes instead of a million labels."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        categories = column.cat.categories
        if value not in categories:
            return np.zeros(len(column), dtype=bool)
        return column.cat.codes.to_numpy() == categories.get_loc(value)
    return column.astype(object).to_numpy() == value


def _arm_means(rng: np.random.Generator, cost: NDArray, resp: NDArray, n_resamples: int,
               resample: bool) -> tuple[NDArray, NDArray]:
    """Bootstrap replicates of an arm's mean cost and responder rate."""
    n = cost.size
    if not resample:  # normal sampling distribution of the two means (CLT)
        mean = np.array([cost.mean(), resp.mean()])
        cov = np.cov(np.vstack([cost, resp])) / n
        draws = rng.multivariate_normal(mean, cov, size=n_resamples, method="eigh")
        return draws[:, 0], draws[:, 1]
    out_cost = np.empty(n_resamples)
    out_resp = np.empty(n_resamples)
    block = max(1, min(n_resamples, _BLOCK_VALUES // n))
    for start in range(0, n_resamples, block):
        size = min(block, n_resamples - start)
        idx = rng.integers(0, n, size=(size, n))
        out_cost[start:start + size] = cost[idx].mean(axis=1)
        out_resp[start:start + size] = resp[idx].mean(axis=1)
    return out_cost, out_resp


def _fmt_points(proportion: float) -> str:
    """A difference of proportions in percentage points, signed."""
    points = proportion * 100
    return f"{points:+.2f}" if 0 < abs(points) < 0.1 else f"{points:+.1f}"


def _fmt_money(value: float, currency: str) -> str:
    return f"{value:,.0f} {currency}" if math.isfinite(value) else "undefined"


def _interpretation(d_cost: float, cost_ci: tuple[float, float], d_resp: float,
                    resp_ci: tuple[float, float], icer: float, icer_ci: tuple[float, float],
                    quadrants: dict[str, float], level: float, currency: str) -> str:
    pct = f"{level:.0%}"
    parts = [
        f"KP costs {_fmt_money(d_cost, currency)} {'more' if d_cost >= 0 else 'less'} per "
        f"patient than VP ({pct} CI {_fmt_money(cost_ci[0], currency)} to "
        f"{_fmt_money(cost_ci[1], currency)}; negative = KP cheaper).",
        f"The responder rate differs by {_fmt_points(d_resp)} percentage points (KP − VP; "
        f"{pct} CI {_fmt_points(resp_ci[0])} to {_fmt_points(resp_ci[1])}).",
    ]
    crosses = resp_ci[0] <= 0.0 <= resp_ci[1]
    if crosses:
        parts.append(
            "The CI of the difference in responders includes 0, so the ICER (cost per "
            "additional responder) is undefined or unstable: its denominator can be 0 and the "
            "ratio has no finite variance. No CI is given for it (Briggs, O'Brien & Blackhouse "
            "2002); read the cost-effectiveness plane instead.")
    elif d_cost > 0 and d_resp > 0:
        parts.append(f"Each additional responder with KP costs {_fmt_money(icer, currency)} "
                     f"({pct} CI {_fmt_money(icer_ci[0], currency)} to "
                     f"{_fmt_money(icer_ci[1], currency)}).")
    elif d_cost <= 0 < d_resp:
        parts.append("KP is cheaper and more effective (dominant); a negative ICER is not a "
                     "cost per responder and is not interpreted as one.")
    elif d_cost >= 0 > d_resp:
        parts.append("KP is costlier and less effective (dominated).")
    else:
        parts.append(f"KP is cheaper and less effective: it saves "
                     f"{_fmt_money(icer, currency)} per responder forgone ({pct} CI "
                     f"{_fmt_money(icer_ci[0], currency)} to "
                     f"{_fmt_money(icer_ci[1], currency)}).")
    parts.append(
        "Cost-effectiveness plane (bootstrap): "
        f"KP dominant (cheaper, more responders) {quadrants['se']:.0%}; "
        f"dominated (costlier, fewer responders) {quadrants['nw']:.0%}; "
        f"costlier with more responders {quadrants['ne']:.0%}; "
        f"cheaper with fewer responders {quadrants['sw']:.0%}.")
    return " ".join(parts)


def incremental_cost_per_responder(
    records: pd.DataFrame,
    responder: Any = None,
    options: CostOptions | None = None,
    n_resamples: int = 2000,
    seed: int = 0,
    level: float = 0.95,
    *,
    responders: pd.Series | Sequence[bool | None] | None = None,
    conversion: CostConversion | None = None,
) -> IncrementalCost:
    """Incremental cost per additional responder of KP versus VP, with bootstrap CIs.

    Parameters
    ----------
    records : pandas.DataFrame
        Procedure records with ``procedure`` and the cost columns.
    responder : ResponderDefinition, optional
        Responder definition (see :func:`cost_per_responder`).
    options : CostOptions, optional
        Currency conversion.
    n_resamples : int, default 2000
        Bootstrap resamples.
    seed : int, default 0
        Seed of the bootstrap generator.
    level : float, default 0.95
        Confidence level.
    responders : pandas.Series or sequence, optional
        Responder status given directly instead of ``responder``.
    conversion : CostConversion, optional
        The costs of these ``records`` already converted by :func:`convert_costs` (then
        ``options`` may be left out; if given it must be the conversion's options).

    Returns
    -------
    IncrementalCost

    Raises
    ------
    InsufficientDataError
        When either procedure has fewer than 2 patients with a known cost and status.

    Notes
    -----
    Patients with a known procedure, converted cost and responder status are analysed
    (complete cases). Δcost = mean cost(KP) − mean cost(VP), Δresponse = responder rate(KP) −
    rate(VP), ICER = Δcost / Δresponse. The bootstrap resamples patients with replacement
    within each procedure (stratified, so the arm sizes stay fixed), keeping each patient's
    cost and response together so that their correlation is carried into the joint
    distribution (Efron & Tibshirani 1993). Δcost and Δresponse get percentile intervals. The
    ICER interval is the percentile interval of the replicates ordered by their angle on the
    cost-effectiveness plane, which equals ordering by ICER while the replicates stay on the
    side of the Δresponse = 0 axis of the point estimate; it is reported only when the
    Δresponse CI excludes 0 (Briggs, O'Brien & Blackhouse 2002). The quadrant probabilities
    are the shares of replicates in each quadrant of the plane. With more than 100,000
    patients the arm means are drawn from their bivariate normal sampling distribution
    (central limit theorem) instead of resampling patients.

    Examples
    --------
    >>> import pandas as pd
    >>> rows = pd.DataFrame({
    ...     "procedure": ["vertebroplasty"] * 10 + ["kyphoplasty"] * 10,
    ...     "cost": [3000.0, 3200.0] * 5 + [4000.0, 4200.0] * 5, "currency": "USD",
    ...     "procedure_date": pd.Timestamp("2024-01-02")})
    >>> status = [True] * 5 + [False] * 5 + [True] * 7 + [False] * 3
    >>> result = incremental_cost_per_responder(rows, responders=status, n_resamples=200)
    >>> round(result.delta_cost), round(result.delta_response, 2), round(result.icer)
    (1000, 0.2, 5000)
    """
    level = float(level)
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be between 0 and 1 (exclusive), got {level}")
    if "procedure" not in records.columns:
        raise ValueError("records have no 'procedure' column")
    status = _responder_status(records, responder, responders)
    options, conversion = _use_conversion(records, options, conversion)
    complete = status.notna().to_numpy() & ~np.isnan(conversion.values)
    resp = status.to_numpy(dtype=bool, na_value=False).astype(float)
    kp = complete & _equals(records["procedure"], KP)
    vp = complete & _equals(records["procedure"], VP)
    method_name = "incremental cost per responder"
    for label, mask in (("kyphoplasty", kp), ("vertebroplasty", vp)):
        if mask.sum() < 2:
            raise InsufficientDataError(method_name, CountedText.of(
                "{label} has {count} patient(s) with a known cost and responder status; 2 are "
                "needed", label=label, count=int(mask.sum())))
    cost_kp, cost_vp = conversion.values[kp], conversion.values[vp]
    resp_kp, resp_vp = resp[kp], resp[vp]
    d_cost = float(cost_kp.mean() - cost_vp.mean())
    d_resp = float(resp_kp.mean() - resp_vp.mean())
    icer = d_cost / d_resp if d_resp != 0 else math.nan

    resample = cost_kp.size + cost_vp.size <= ICER_RESAMPLE_MAX_N
    rng = np.random.default_rng(seed)
    boot_cost_kp, boot_resp_kp = _arm_means(rng, cost_kp, resp_kp, int(n_resamples), resample)
    boot_cost_vp, boot_resp_vp = _arm_means(rng, cost_vp, resp_vp, int(n_resamples), resample)
    boot_cost = boot_cost_kp - boot_cost_vp
    boot_resp = boot_resp_kp - boot_resp_vp
    alpha = 1.0 - level
    cost_ci = tuple(float(q) for q in np.quantile(boot_cost, [alpha / 2, 1 - alpha / 2]))
    resp_ci = tuple(float(q) for q in np.quantile(boot_resp, [alpha / 2, 1 - alpha / 2]))

    icer_ci = (math.nan, math.nan)
    if not (resp_ci[0] <= 0.0 <= resp_ci[1]) and d_resp != 0:
        sign = math.copysign(1.0, d_resp)
        angle = np.arctan2(sign * boot_cost, sign * boot_resp)
        lo, hi = np.quantile(angle, [alpha / 2, 1 - alpha / 2])
        icer_ci = (float(np.tan(lo)) if lo > -math.pi / 2 else -math.inf,
                   float(np.tan(hi)) if hi < math.pi / 2 else math.inf)
    quadrants = {
        "ne": float(np.mean((boot_cost > 0) & (boot_resp > 0))),
        "se": float(np.mean((boot_cost < 0) & (boot_resp > 0))),
        "nw": float(np.mean((boot_cost > 0) & (boot_resp < 0))),
        "sw": float(np.mean((boot_cost < 0) & (boot_resp < 0))),
    }
    if resample:
        how = ("nonparametric bootstrap stratified by procedure (patients resampled with "
               "replacement within KP and within VP, cost and response kept together)")
    else:
        how = (f"normal approximation (n > {ICER_RESAMPLE_MAX_N:,}): arm means drawn from "
               "their bivariate normal sampling distribution")
    method = (f"{how}; {n_resamples} replicates, seed {seed}; percentile CIs for Δcost and "
              "Δresponse; ICER CI by the angular percentile method on the cost-effectiveness "
              "plane, given only when the Δresponse CI excludes 0 (Briggs, O'Brien & "
              "Blackhouse 2002; Efron & Tibshirani 1993)")
    text = _interpretation(d_cost, cost_ci, d_resp, resp_ci, icer, icer_ci, quadrants, level,
                           options.reporting_currency)
    return IncrementalCost(
        delta_cost=d_cost, delta_cost_low=cost_ci[0], delta_cost_high=cost_ci[1],
        delta_response=d_resp, delta_response_low=resp_ci[0], delta_response_high=resp_ci[1],
        icer=icer, icer_low=icer_ci[0], icer_high=icer_ci[1],
        n_kp=int(cost_kp.size), n_vp=int(cost_vp.size), interpretation=text, method=method,
        prob_dominant=quadrants["se"], prob_dominated=quadrants["nw"],
        prob_more_costly_more_effective=quadrants["ne"],
        prob_less_costly_less_effective=quadrants["sw"],
        currency=options.reporting_currency,
    )


# --------------------------------------------------------------------------------------------
# Net-benefit regression and the cost-effectiveness acceptability curve
# --------------------------------------------------------------------------------------------

#: Covariates of the net-benefit regression: those the project adjusts for everywhere.
NBR_COVARIATES: tuple[str, ...] = ("age", "sex", "etiology", "levels_treated", "country")
#: Willingness-to-pay grid when none is given: 0 to this many times the mean cost per
#: patient of the analysed records (so the range suits any reporting currency).
WTP_RANGE_MEAN_COSTS = 20.0


@dataclasses.dataclass(frozen=True)
class NetBenefit(Result):
    """Adjusted incremental cost, incremental effect and net benefit of KP versus VP.

    Made by :func:`net_benefit_regression`. The effect is being a responder (a proportion),
    so λ is a willingness to pay per additional responder.

    Attributes
    ----------
    delta_cost, delta_cost_low, delta_cost_high, se_cost : float
        Adjusted difference in mean cost per patient, KP − VP (coefficient of KP in the
        linear model of cost), its CI and standard error.
    delta_effect, delta_effect_low, delta_effect_high, se_effect : float
        Adjusted difference in the responder rate, KP − VP (linear probability model).
    cov_cost_effect : float
        Covariance of the two coefficients (the same design, one joint sandwich / model).
    df : int
        Degrees of freedom of the t quantiles (n − p, or clusters − 1 when clustered).
    wtp, inb, inb_low, inb_high, prob_cost_effective : tuple of float
        Willingness-to-pay values λ, the incremental net benefit λ·Δeffect − Δcost at each,
        its CI, and the probability that KP is cost-effective, P(INB > 0) (the
        cost-effectiveness acceptability curve).
    icer, icer_low, icer_high : float
        Δcost / Δeffect and its Fieller CI, only when ``icer_defined``; NaN otherwise.
    icer_defined : bool
        True when the Δeffect CI excludes 0 and the ICER is a cost per additional responder
        (north-east quadrant) or a saving per responder forgone (south-west).
    verdict : str
        One sentence: why the ICER is or is not given.
    n, n_kp, n_vp, n_clusters : int
        Patients analysed, per procedure, and clusters (0 when not clustered).
    excluded : int
        KP/VP records left out (no converted cost, unknown responder status or a missing
        covariate).
    covariates, cluster, method, currency : str
        What the models adjust for, the cluster column ("" if none), how, and the currency.
    price_year : int or None
        Price year of the costs (None: nominal).
    """

    delta_cost: float
    delta_cost_low: float
    delta_cost_high: float
    se_cost: float
    delta_effect: float
    delta_effect_low: float
    delta_effect_high: float
    se_effect: float
    cov_cost_effect: float
    df: int
    wtp: tuple[float, ...]
    inb: tuple[float, ...]
    inb_low: tuple[float, ...]
    inb_high: tuple[float, ...]
    prob_cost_effective: tuple[float, ...]
    icer: float
    icer_low: float
    icer_high: float
    icer_defined: bool
    verdict: str
    n: int
    n_kp: int
    n_vp: int
    n_clusters: int
    excluded: int
    covariates: str
    cluster: str
    method: str
    currency: str
    price_year: int | None

    def net_benefit(self, wtp: float | Sequence[float], level: float = 0.95) -> pd.DataFrame:
        """INB, its CI and P(INB > 0) at any willingness to pay, from the two regressions.

        INB(λ) = λ·Δeffect − Δcost is a linear combination of the two coefficients, so its
        variance is λ²·Var(Δeffect) − 2λ·Cov + Var(Δcost): identical to the coefficient of KP
        in a regression of each patient's net benefit λ·effect − cost on the same design,
        without refitting (Hoch, Briggs & Willan 2002).

        Examples
        --------
        >>> import pandas as pd
        >>> rows = pd.DataFrame({"procedure": ["vertebroplasty", "kyphoplasty"] * 4,
        ...     "cost": [10.0, 30.0, 12.0, 28.0, 14.0, 36.0, 16.0, 34.0], "currency": "USD",
        ...     "procedure_date": pd.Timestamp("2024-01-02")})
        >>> status = [False, True, True, True, False, False, False, True]
        >>> fit = net_benefit_regression(rows, responders=status, covariates=(), cluster=None)
        >>> fit.net_benefit([0, 38])[["wtp", "inb"]].round(6).values.tolist()
        [[0.0, -19.0], [38.0, 0.0]]
        """
        lam = np.atleast_1d(np.asarray(wtp, dtype=float))
        return pd.DataFrame(_inb(lam, self.delta_cost, self.delta_effect, self.se_cost ** 2,
                                 self.se_effect ** 2, self.cov_cost_effect, self.df, level))

    def ceac(self) -> pd.DataFrame:
        """The stored grid: ``wtp``, ``inb``, ``inb_low``, ``inb_high``, ``prob_cost_effective``."""
        return pd.DataFrame({"wtp": self.wtp, "inb": self.inb, "inb_low": self.inb_low,
                             "inb_high": self.inb_high,
                             "prob_cost_effective": self.prob_cost_effective})


def _inb(lam: NDArray[np.float64], d_cost: float, d_effect: float, var_cost: float,
         var_effect: float, cov: float, df: int, level: float) -> dict[str, NDArray]:
    inb = lam * d_effect - d_cost
    var = lam * lam * var_effect - 2.0 * lam * cov + var_cost
    se = np.sqrt(np.maximum(var, 0.0))
    tq = float(st.t.ppf(0.5 + level / 2, df))
    with np.errstate(divide="ignore", invalid="ignore"):
        prob = np.where(se > 0, st.t.cdf(inb / np.where(se > 0, se, 1.0), df),
                        (inb > 0).astype(float))
    return {"wtp": lam, "inb": inb, "inb_low": inb - tq * se, "inb_high": inb + tq * se,
            "se": se, "prob_cost_effective": prob}


def _fieller(d_cost: float, d_effect: float, var_cost: float, var_effect: float, cov: float,
             tq: float) -> tuple[float, float]:
    """Fieller CI of Δcost/Δeffect: the λ where the INB CI limits reach 0 (bounded only when
    the Δeffect CI excludes 0, i.e. d_effect² > t²·var_effect)."""
    a = d_effect ** 2 - tq ** 2 * var_effect
    b = -2.0 * (d_effect * d_cost - tq ** 2 * cov)
    c = d_cost ** 2 - tq ** 2 * var_cost
    disc = b * b - 4 * a * c
    if a <= 0 or disc < 0:
        return math.nan, math.nan
    root = math.sqrt(disc)
    return (-b - root) / (2 * a), (-b + root) / (2 * a)


@dataclasses.dataclass
class _Coded:
    """The kept rows' covariates: numeric columns, and categorical codes (0..L-1 over the
    levels present, first sorted level = reference) with their level names."""

    numeric: list[NDArray[np.float64]]
    numeric_names: list[str]
    categorical: list[NDArray[np.intp]]
    categorical_levels: list[list[str]]
    categorical_names: list[str]
    used: list[str]


def _design(records: pd.DataFrame, keep: NDArray[np.bool_],
            covariates: tuple[str, ...]) -> tuple[_Coded, NDArray[np.bool_]]:
    """Code the covariates (numeric linear; categories as indicators with the first sorted
    level as reference) for the complete cases; a covariate with one value is dropped."""
    coded: list[tuple[str, NDArray, list[str] | None]] = []
    for name in covariates:
        series = records[name]
        dtype = series.dtype
        if isinstance(dtype, pd.CategoricalDtype):
            codes = series.cat.codes.to_numpy()  # small integers, -1 = missing
            names = np.asarray(series.cat.categories.astype(str))
            order = np.argsort(names, kind="stable")
            if np.any(order != np.arange(order.size)):  # re-code in sorted level order
                rank = np.empty(order.size + 1, dtype=codes.dtype)
                rank[order] = np.arange(order.size)
                rank[-1] = -1  # code -1 (missing) indexes the last entry
                codes = rank[codes]
            levels = [str(v) for v in names[order]]
            keep = keep & (codes >= 0)
            coded.append((name, codes, levels))
        elif pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_string_dtype(dtype) or \
                pd.api.types.is_object_dtype(dtype):
            codes, uniques = pd.factorize(series.astype("string"), sort=True)
            keep = keep & (codes >= 0)
            coded.append((name, codes.astype(np.intp), [str(u) for u in uniques]))
        else:
            if not pd.api.types.is_numeric_dtype(dtype):
                series = pd.to_numeric(series, errors="coerce")
            values = series.to_numpy(dtype=float, na_value=np.nan)
            keep = keep & ~np.isnan(values)
            coded.append((name, values, None))
    out = _Coded([], [], [], [], [], [])
    for name, values, levels in coded:
        kept = values[keep]
        if levels is None:
            if kept.size == 0 or float(kept.min()) == float(kept.max()):
                continue
            out.numeric.append(kept.astype(float))
            out.numeric_names.append(name)
        else:
            counts = np.bincount(kept, minlength=len(levels))
            present = np.flatnonzero(counts)
            if present.size < 2:
                continue
            if present.size < len(levels):  # number the present levels 0, 1, ...
                kept = (np.cumsum(counts > 0) - 1)[kept]
            out.categorical.append(kept)
            out.categorical_levels.append([levels[i] for i in present])
            out.categorical_names.append(name)
        out.used.append(name)
    return out, keep


def _column_names(coded: _Coded) -> list[str]:
    names = ["Intercept", "kp"]
    for name, levels in zip(coded.categorical_names, coded.categorical_levels, strict=True):
        names += [f"{name}={level}" for level in levels[1:]]
    return names + coded.numeric_names


#: The moment path needs the indicator part of each cell of equal categorical covariates:
#: with more cells than this the n × p design matrix is built instead.
_MOMENT_MAX_CELLS = 100_000


def _cells(kp: NDArray[np.float64],
           coded: _Coded) -> tuple[NDArray[np.intp], NDArray[np.float64]] | None:
    """Each row's cell of equal KP and categorical covariates, and each present cell's
    indicator part of the design row (intercept, KP, dummies); None when too many cells."""
    radix = [2] + [len(levels) for levels in coded.categorical_levels]
    n_cells = int(np.prod(radix, dtype=np.float64))
    if n_cells > _MOMENT_MAX_CELLS:
        return None
    key = kp.astype(np.int32 if n_cells < 2 ** 31 else np.int64)
    for codes, size in zip(coded.categorical, radix[1:], strict=True):
        key *= size
        key += codes
    counts = np.bincount(key, minlength=n_cells)
    present = np.flatnonzero(counts)
    cell = (np.cumsum(counts > 0) - 1)[key]
    digits = []
    rest = present.copy()
    for size in reversed(radix):
        digits.append(rest % size)
        rest //= size
    digits.reverse()
    columns = [np.ones(present.size), digits[0].astype(float)]
    for digit, size in zip(digits[1:], radix[1:], strict=True):
        columns += [(digit == level).astype(float) for level in range(1, size)]
    return cell, np.column_stack(columns)


def _fit_two(kp: NDArray[np.float64], coded: _Coded, outcomes: list[NDArray[np.float64]],
             clusters: NDArray[np.intp] | None, n_clusters: int,
             method_name: str) -> tuple[NDArray[np.float64], NDArray[np.float64], int, int]:
    """OLS of both outcomes on the same design: KP coefficients (2,), their covariance (2×2,
    model-based or cluster-robust HC1), residual df n − p, and p.

    Without building the n × p design: the rows of a cell of equal categorical covariates
    share their indicator part d_c, so XᵀX and XᵀY need only each cell's count and sums of
    the numeric columns and outcomes v (weighted bincounts) and the total VᵀV (dot
    products); fitted values and the KP influence xᵢ·a are d_c·β gathered by cell plus the
    numeric part. With very many cells the design is built instead (same arithmetic).
    """
    n = kp.size
    numeric = list(coded.numeric)
    v = numeric + list(outcomes)
    q = len(numeric)
    cells = _cells(kp, coded)
    if cells is None:
        dummies = [(codes == level).astype(float) for codes, levels in
                   zip(coded.categorical, coded.categorical_levels, strict=True)
                   for level in range(1, len(levels))]
        cell, d = np.arange(n), np.column_stack([np.ones(n), kp, *dummies])
    else:
        cell, d = cells
    pc = d.shape[1]
    p = pc + q
    if n - p < 1:
        raise InsufficientDataError(method_name, f"{n} patients for {p} coefficients")
    n_cells = d.shape[0]
    count = np.bincount(cell, minlength=n_cells).astype(float)
    sums = np.column_stack([np.bincount(cell, weights=column, minlength=n_cells)
                            for column in v])
    dd = (d * count[:, None]).T @ d            # Σ over rows of d dᵀ
    dv = d.T @ sums                            # Σ d vᵀ
    stacked = np.column_stack(v)
    vv = stacked.T @ stacked                   # VᵀV in one product (not len(v)² dot calls)
    gram = np.block([[dd, dv[:, :q]], [dv[:, :q].T, vv[:q, :q]]])
    cross = np.vstack([dv[:, q:], vv[:q, q:]])
    scale = np.sqrt(np.diag(gram))
    scale[scale == 0] = 1.0
    rank = int(np.linalg.matrix_rank(gram / scale[:, None] / scale[None, :]))
    if rank < p:
        raise InsufficientDataError(method_name, f"the design is collinear (rank {rank} of "
                                    f"{p} columns: {', '.join(_column_names(coded))})")
    bread = np.linalg.inv(gram)
    coef = bread @ cross
    row = bread[1]  # the KP row of (X'X)^-1
    if clusters is not None:
        influence = (d @ row[:pc])[cell]  # xᵢ·a, each patient's weight in the KP coefficient
        for k, column in enumerate(numeric):
            influence += row[pc + k] * column
        scores = np.empty((n_clusters, 2))
        for j, y in enumerate(outcomes):
            resid = y - (d @ coef[:pc, j])[cell]
            for k, column in enumerate(numeric):
                resid -= coef[pc + k, j] * column
            resid *= influence
            scores[:, j] = np.bincount(clusters, weights=resid, minlength=n_clusters)
        factor = n_clusters / (n_clusters - 1) * (n - 1) / (n - p)
        cov = factor * (scores.T @ scores)
    else:
        sigma = (vv[q:, q:] - coef.T @ cross) / (n - p)  # U'U = Y'Y − B'X'Y
        cov = bread[1, 1] * sigma
    return coef[1], cov, n - p, p


def _cluster_codes(groups: pd.Series, keep: NDArray[np.bool_]) -> tuple[NDArray[np.intp], int]:
    """Cluster number (0..G-1, -1 = missing) of each kept row, and G."""
    if isinstance(groups.dtype, pd.CategoricalDtype):
        kept_codes = groups.cat.codes.to_numpy()[keep].astype(np.intp)
        seen = np.bincount(kept_codes[kept_codes >= 0], minlength=len(groups.cat.categories))
        renumber = np.append(np.cumsum(seen > 0) - 1, -1)  # code -1 stays -1
        return renumber[kept_codes], int(np.count_nonzero(seen))
    values = (groups.array if isinstance(groups.dtype, pd.api.extensions.ExtensionDtype)
              else groups.to_numpy())
    codes, uniques = pd.factorize(values[keep])
    return codes.astype(np.intp), len(uniques)


def net_benefit_regression(
    records: pd.DataFrame,
    responder: Any = None,
    *,
    responders: pd.Series | Sequence[bool | None] | None = None,
    covariates: Sequence[str] = NBR_COVARIATES,
    cluster: str | None = "facility_id",
    wtp: Sequence[float] | None = None,
    level: float = 0.95,
    options: CostOptions | None = None,
    conversion: CostConversion | None = None,
) -> NetBenefit:
    """Covariate-adjusted incremental cost, effect and net benefit of KP versus VP.

    Parameters
    ----------
    records : pandas.DataFrame
        Procedure records with ``procedure``, the cost columns and the covariates.
    responder : ResponderDefinition, optional
        Responder definition (see :func:`cost_per_responder`).
    responders : pandas.Series or sequence, optional
        Responder status given directly instead of ``responder``.
    covariates : sequence of str
        Adjustment columns (default: age, sex, etiology, levels treated and country, the
        project's adjustment set). Numeric columns enter linearly, the others as indicators
        (first sorted level as reference); a covariate with one value is dropped.
    cluster : str or None, default "facility_id"
        Column of clusters for cluster-robust (sandwich) standard errors; None for the
        model-based ones. A column that is absent is an error.
    wtp : sequence of float, optional
        Willingness-to-pay values λ per additional responder, in the reporting currency.
        Default: 101 values from 0 to 20 × the mean cost per analysed patient.
    level : float, default 0.95
        Confidence level.
    options, conversion : optional
        Currency and price-year conversion (see :func:`cost_summary`).

    Returns
    -------
    NetBenefit

    Raises
    ------
    InsufficientDataError
        Fewer than 2 analysed patients in a procedure, or no residual degrees of freedom.

    Notes
    -----
    Net-benefit regression (Hoch, Briggs & Willan 2002): for each patient i and
    willingness to pay λ, NB_i(λ) = λ·e_i − c_i with e_i = 1 for a responder; a linear
    model NB_i = α + δ·KP_i + γᵀx_i gives the adjusted incremental net benefit δ(λ). As the
    design is the same for every λ, δ(λ) = λ·Δe − Δc where Δc and Δe are the coefficients
    of KP in the linear models of cost and of response (a linear probability model) on that
    design, and Var δ(λ) = λ²·Var Δe − 2λ·Cov(Δe, Δc) + Var Δc. The two models are fitted
    once; every λ costs a few arithmetic operations. Standard errors are model-based (OLS,
    t with n − p df) or, with ``cluster``, the cluster-robust sandwich with the usual
    small-sample factor G/(G − 1)·(n − 1)/(n − p) (R ``sandwich::vcovCL``, type HC1) and t
    with G − 1 df. Linear models estimate differences in *mean* cost and in the responder
    *proportion*, the quantities a budget and the ICER need (Thompson & Barber 2000).

    The cost-effectiveness acceptability curve (Fenwick, Claxton & Sculpher 2001) is
    P(INB(λ) > 0), here the one-sided p-value complement F_t(INB/SE) of the regression
    (Hoch et al. 2002). The ICER Δc/Δe is reported only when the Δe CI excludes 0 and KP
    is costlier and more effective (a cost per additional responder) or cheaper and less
    effective (a saving per responder forgone), with its Fieller interval: the λ at which
    the INB CI limits cross 0 (Willan & O'Brien 1996). Otherwise the result says why.

    Examples
    --------
    >>> import pandas as pd
    >>> rows = pd.DataFrame({"procedure": ["vertebroplasty", "kyphoplasty"] * 4,
    ...     "cost": [10.0, 30.0, 12.0, 28.0, 14.0, 36.0, 16.0, 34.0], "currency": "USD",
    ...     "procedure_date": pd.Timestamp("2024-01-02")})
    >>> status = [False, True, True, True, False, False, False, True]
    >>> fit = net_benefit_regression(rows, responders=status, covariates=(), cluster=None)
    >>> round(fit.delta_cost, 6), round(fit.delta_effect, 6)
    (19.0, 0.5)
    """
    level = float(level)
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be between 0 and 1 (exclusive), got {level}")
    covariates = _as_tuple(covariates)
    needed = ["procedure", *covariates] + ([cluster] if cluster else [])
    missing = [column for column in needed if column not in records.columns]
    if missing:
        raise ValueError(f"records have no column(s) {', '.join(missing)}")
    status = _responder_status(records, responder, responders)
    options, conversion = _use_conversion(records, options, conversion)
    kp_all = _equals(records["procedure"], KP)
    in_arms = kp_all | _equals(records["procedure"], VP)
    keep = in_arms & status.notna().to_numpy() & ~np.isnan(conversion.values)
    coded, keep = _design(records, keep, covariates)
    clusters, n_clusters = None, 0
    if cluster:  # coded on the analysed rows only (hashing a million texts is costly)
        clusters, n_clusters = _cluster_codes(records[cluster], keep)
        if (clusters < 0).any():  # rare: a missing cluster; leave those rows out
            keep[np.flatnonzero(keep)[clusters < 0]] = False
            coded, keep = _design(records, keep, covariates)
            clusters, n_clusters = _cluster_codes(records[cluster], keep)
    used = coded.used
    kp = kp_all[keep].astype(float)
    n_kp, n = int(kp.sum()), int(keep.sum())
    n_vp = n - n_kp
    method_name = "net-benefit regression"
    for label, count in (("kyphoplasty", n_kp), ("vertebroplasty", n_vp)):
        if count < 2:
            raise InsufficientDataError(method_name, f"{label} has {count} patient(s) with a "
                                        "known cost, responder status and covariates; 2 are "
                                        "needed")
    outcomes = [conversion.values[keep],
                status.to_numpy(dtype=bool, na_value=False)[keep].astype(float)]
    if cluster and n_clusters < 2:
        raise InsufficientDataError(method_name, f"one {cluster} only: cluster-robust "
                                    "standard errors need at least 2")
    coef, cov, df_resid, _ = _fit_two(kp, coded, outcomes, clusters, n_clusters, method_name)
    df = n_clusters - 1 if cluster else df_resid
    coef = np.vstack([[0.0, 0.0], coef])  # row 1 = the KP coefficients (cost, effect)
    d_cost, d_effect = float(coef[1, 0]), float(coef[1, 1])
    var_cost, var_effect, cov_ce = float(cov[0, 0]), float(cov[1, 1]), float(cov[0, 1])
    tq = float(st.t.ppf(0.5 + level / 2, df))
    se_cost, se_effect = math.sqrt(var_cost), math.sqrt(var_effect)
    effect_ci = (d_effect - tq * se_effect, d_effect + tq * se_effect)
    cost_ci = (d_cost - tq * se_cost, d_cost + tq * se_cost)
    if wtp is None:
        top = WTP_RANGE_MEAN_COSTS * float(np.mean(outcomes[0]))
        lam = np.linspace(0.0, top if top > 0 else 1.0, 101)
    else:
        lam = np.asarray(wtp, dtype=float).ravel()
        if lam.size == 0 or not np.all(np.isfinite(lam)):
            raise ValueError("wtp must be finite numbers")
    grid = _inb(lam, d_cost, d_effect, var_cost, var_effect, cov_ce, df, level)
    currency = options.reporting_currency
    icer, icer_ci, defined = math.nan, (math.nan, math.nan), False
    pct = f"{level:.0%}"
    if effect_ci[0] <= 0.0 <= effect_ci[1]:
        verdict = (f"No ICER: the {pct} CI of the adjusted difference in responders "
                   f"({_fmt_points(effect_ci[0])} to {_fmt_points(effect_ci[1])} points) "
                   "includes 0, so the cost per additional responder is undefined or "
                   "unstable (its denominator can be 0); read the acceptability curve.")
    elif d_effect < 0 < d_cost:
        verdict = ("No ICER: after adjustment KP is costlier and has fewer responders "
                   "(dominated); a negative ratio is not a cost per responder.")
    elif d_cost < 0 < d_effect:
        verdict = ("No ICER: after adjustment KP is cheaper and has more responders "
                   "(dominant); a negative ratio is not a cost per responder.")
    else:
        defined = True
        icer = d_cost / d_effect
        icer_ci = _fieller(d_cost, d_effect, var_cost, var_effect, cov_ce, tq)
        what = ("extra cost per additional responder with KP" if d_effect > 0 else
                "saving per responder forgone with KP")
        verdict = (f"Adjusted ICER ({what}): {_fmt_money(icer, currency)} ({pct} Fieller CI "
                   f"{_fmt_money(icer_ci[0], currency)} to {_fmt_money(icer_ci[1], currency)}).")
    how = [
        "net-benefit regression (Hoch, Briggs & Willan 2002): linear models of cost and of "
        "response (linear probability) on KP and the covariates, fitted once; INB(λ) = "
        "λ·Δeffect − Δcost with Var = λ²Var(Δe) − 2λCov + Var(Δc)",
        f"adjusted for {', '.join(used)}" if used else "unadjusted",
        (f"cluster-robust SE by {cluster} ({n_clusters} clusters, HC1 small-sample factor, "
         f"t with {df} df)") if cluster else f"model-based SE (t with {df} df)",
        "acceptability curve P(INB > 0) = F_t(INB/SE) (Fenwick, Claxton & Sculpher 2001)",
        "ICER with a Fieller CI only when the Δeffect CI excludes 0",
    ]
    dropped = [c for c in covariates if c not in used]
    if dropped:
        how.append(f"dropped (one value only): {', '.join(dropped)}")
    return NetBenefit(
        delta_cost=d_cost, delta_cost_low=cost_ci[0], delta_cost_high=cost_ci[1],
        se_cost=se_cost, delta_effect=d_effect, delta_effect_low=effect_ci[0],
        delta_effect_high=effect_ci[1], se_effect=se_effect, cov_cost_effect=cov_ce, df=df,
        wtp=tuple(float(v) for v in grid["wtp"]), inb=tuple(float(v) for v in grid["inb"]),
        inb_low=tuple(float(v) for v in grid["inb_low"]),
        inb_high=tuple(float(v) for v in grid["inb_high"]),
        prob_cost_effective=tuple(float(v) for v in grid["prob_cost_effective"]),
        icer=icer, icer_low=icer_ci[0], icer_high=icer_ci[1], icer_defined=defined,
        verdict=verdict, n=n, n_kp=n_kp, n_vp=n_vp, n_clusters=n_clusters,
        excluded=int(in_arms.sum() - n), covariates=", ".join(used), cluster=cluster or "",
        method="; ".join(how), currency=currency, price_year=conversion.price_year,
    )


# --------------------------------------------------------------------------------------------
# Adjusted cost ratio
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class AdjustedCostRatio(Result):
    """Ratio of mean costs, KP / VP, from a gamma GLM with log link.

    Attributes
    ----------
    ratio, low, high : float
        exp(coefficient of KP) and its CI (t-based).
    p_value : float
        Two-sided t-test of ratio = 1.
    n : int
        Records in the model.
    method : str
        Model, covariates and inference.
    n_kp, n_vp : int
        Records per procedure in the model.
    se_log : float
        Standard error of log(ratio).
    scale : float
        Dispersion φ (Pearson X² / residual df).
    covariates : str
        Covariates in the model, comma separated.
    excluded : int
        KP/VP records left out (no converted cost, cost 0, or a missing covariate).
    currency : str
        Currency the costs were converted to before fitting.
    """

    ratio: float
    low: float
    high: float
    p_value: float
    n: int
    method: str
    n_kp: int
    n_vp: int
    se_log: float
    scale: float
    covariates: str
    excluded: int
    currency: str


def _covariate(series: pd.Series) -> tuple[pd.Series, bool]:
    """Covariate values for the model and whether the column is categorical."""
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype) or isinstance(dtype, pd.CategoricalDtype) or \
            pd.api.types.is_string_dtype(dtype) or pd.api.types.is_object_dtype(dtype):
        return series.astype("string"), True
    return pd.to_numeric(series, errors="coerce").astype(float), False


def _gamma_log_start(exog: NDArray[np.float64], y: NDArray[np.float64],
                     max_iter: int = 50) -> NDArray[np.float64] | None:
    """Starting values for statsmodels' gamma log-link GLM: the numpy IRLS fit of the same
    model (:func:`analysis._kernels._fit_gamma_log`, much faster on large data).

    statsmodels then confirms convergence (usually in one step) and computes all inference, so
    the starting values cannot change the estimate, only the run time. None when the fit
    fails (statsmodels then starts from its own values).
    """
    try:
        beta = _fit_gamma_log(exog, y, max_iter=max_iter)[0]
    except (np.linalg.LinAlgError, FloatingPointError, ValueError, OverflowError):
        return None
    return beta if np.all(np.isfinite(beta)) else None


def adjusted_cost_ratio(
    records: pd.DataFrame,
    covariates: Sequence[str] = ("age", "sex", "etiology", "levels_treated", "country"),
    options: CostOptions | None = None,
    level: float = 0.95,
    *,
    cluster: str | None = None,
    conversion: CostConversion | None = None,
) -> AdjustedCostRatio:
    """Adjusted ratio of mean costs, KP / VP, from a gamma GLM with log link.

    Parameters
    ----------
    records : pandas.DataFrame
        Procedure records.
    covariates : sequence of str
        Adjustment columns. Numeric columns enter linearly; text, boolean and categorical
        columns as indicator variables (first level in sorted order as reference). A
        covariate with one value among the modelled records is dropped and the method says so.
    options : CostOptions, optional
        Currency conversion (costs are converted before fitting).
    level : float, default 0.95
        Confidence level.
    cluster : str, optional
        Column of clusters (e.g. ``"facility_id"``) for cluster-robust standard errors.
    conversion : CostConversion, optional
        The costs of these ``records`` already converted by :func:`convert_costs` (then
        ``options`` may be left out; if given it must be the conversion's options).

    Returns
    -------
    AdjustedCostRatio

    Raises
    ------
    InsufficientDataError
        When a procedure has fewer than 2 modelled records or the model has no residual
        degrees of freedom.

    Notes
    -----
    ``log E[cost] = b0 + b1·KP + covariates``; exp(b1) is the ratio of mean costs at equal
    covariates, on the scale of arithmetic means (Manning & Mullahy 2001; Barber & Thompson
    2004). The dispersion is estimated by Pearson X² / (n − p) and inference uses the t
    distribution with n − p degrees of freedom (``fit(use_t=True)``), as R's ``glm`` does for
    the Gamma family. The gamma family needs positive costs: records with cost 0 are left out
    (counted in ``excluded``). With one binary covariate the fit is closed form: exp(b1) =
    ratio of the group means, φ = X²/(n − 2), SE = √(φ(1/n0 + 1/n1)).

    Examples
    --------
    >>> import pandas as pd
    >>> rows = pd.DataFrame({
    ...     "procedure": ["vertebroplasty"] * 4 + ["kyphoplasty"] * 4,
    ...     "cost": [4000.0, 5000.0, 6000.0, 5000.0, 8000.0, 10000.0, 12000.0, 10000.0],
    ...     "currency": "USD", "procedure_date": pd.Timestamp("2024-01-02")})
    >>> round(adjusted_cost_ratio(rows, covariates=()).ratio, 6)
    2.0
    """
    import statsmodels.api as sm
    from statsmodels.tools.sm_exceptions import DomainWarning

    level = float(level)
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be between 0 and 1 (exclusive), got {level}")
    covariates = _as_tuple(covariates)
    needed = ["procedure", *covariates] + ([cluster] if cluster else [])
    missing = [column for column in needed if column not in records.columns]
    if missing:
        raise ValueError(f"records have no column(s) {', '.join(missing)}")
    options, conversion = _use_conversion(records, options, conversion)
    procedure = records["procedure"].astype(object).to_numpy()
    in_arms = (procedure == KP) | (procedure == VP)
    frame = pd.DataFrame({"cost": conversion.values,
                          "kp": (procedure == KP).astype(float)}, index=records.index)
    keep = in_arms & (frame["cost"].to_numpy() > 0)
    kinds: dict[str, bool] = {}
    for i, name in enumerate(covariates):
        values, categorical = _covariate(records[name])
        frame[f"x{i}"] = values
        kinds[f"x{i}"] = categorical
        keep &= values.notna().to_numpy()
    if cluster:
        groups = records[cluster]
        keep &= groups.notna().to_numpy()
    data = frame.loc[keep]
    n_kp, n_vp = int(data["kp"].sum()), int((data["kp"] == 0).sum())
    method_name = "gamma GLM (log link)"
    for label, count in (("kyphoplasty", n_kp), ("vertebroplasty", n_vp)):
        if count < 2:
            raise InsufficientDataError(method_name, CountedText.of(
                "{label} has {count} record(s) with a positive cost and complete covariates; "
                "2 are needed", label=label, count=count))
    blocks: list[pd.Series | pd.DataFrame] = [
        pd.Series(1.0, index=data.index, name="Intercept"), data["kp"]]
    used, dropped = [], []
    for i, name in enumerate(covariates):
        values = data[f"x{i}"]
        if values.nunique() < 2:
            dropped.append(name)
            continue
        used.append(name)
        if kinds[f"x{i}"]:  # indicator variables, first sorted level as reference
            levels = sorted(values.unique())
            dummies = pd.get_dummies(pd.Categorical(values, categories=levels), prefix=name,
                                     prefix_sep="=", drop_first=True, dtype=float)
            dummies.index = data.index
            blocks.append(dummies)
        else:
            blocks.append(values.rename(name))
    exog = pd.concat(blocks, axis=1)
    if exog.shape[0] - exog.shape[1] < 1:
        raise InsufficientDataError(method_name, CountedText.of(
            "{records} records for {coefficients} coefficients", records=exog.shape[0],
            words={"coefficients": exog.shape[1]}))
    gram = exog.to_numpy().T @ exog.to_numpy()
    full_rank = np.linalg.matrix_rank(gram) == exog.shape[1]
    model = sm.GLM(data["cost"], exog, family=sm.families.Gamma(link=sm.families.links.Log()))
    fit_kwargs: dict[str, Any] = {"use_t": True}
    if full_rank:
        with np.errstate(all="raise"):
            start = _gamma_log_start(exog.to_numpy(dtype=float),
                                     data["cost"].to_numpy(dtype=float))
        if start is not None:
            fit_kwargs["start_params"] = start
    if cluster:
        cluster_codes = pd.factorize(records.loc[data.index, cluster])[0]
        fit_kwargs.update(cov_type="cluster", cov_kwds={"groups": cluster_codes})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DomainWarning)
        result = model.fit(**fit_kwargs)
    b = float(result.params["kp"])
    se = float(result.bse["kp"])
    low, high = (float(v) for v in np.exp(result.conf_int(alpha=1 - level).loc["kp"]))
    description = [
        "gamma GLM with log link, ratio of mean costs KP / VP = exp(coefficient), t-based "
        f"{level:.0%} CI and p-value (use_t, df = {int(result.df_resid)}), dispersion by "
        "Pearson X²/df (Manning & Mullahy 2001; Barber & Thompson 2004)",
        f"adjusted for {', '.join(used)}" if used else "unadjusted",
    ]
    if cluster:
        description.append(f"cluster-robust SE by {cluster}")
    if dropped:
        description.append(f"dropped (one value only): {', '.join(dropped)}")
    if not full_rank:
        description.append("WARNING: collinear covariates (design not of full rank)")
    if not result.converged:
        description.append("WARNING: the fit did not converge")
    return AdjustedCostRatio(
        ratio=math.exp(b), low=low, high=high, p_value=float(result.pvalues["kp"]),
        n=int(len(data)), method="; ".join(description), n_kp=n_kp, n_vp=n_vp, se_log=se,
        scale=float(result.scale), covariates=", ".join(used),
        excluded=int(in_arms.sum() - len(data)), currency=options.reporting_currency,
    )


# --------------------------------------------------------------------------------------------
# Cost per responder by unit, ranked, with Fieller intervals
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class CostPerResponderRanking(Result):
    """Cost per responder of each unit (region, facility, ...), ranked, with its CI.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per unit, cheapest cost per responder first (units without an estimate last):
        the unit columns, ``n`` (patients with a known cost and responder status),
        ``responders``, ``responder_rate``, ``mean_cost``, ``cost_per_responder``, ``low`` and
        ``high`` (the Fieller interval; NaN when unbounded), ``rank`` (1 = lowest; NaN when
        there is no estimate) and ``status``: ``"estimated"``, ``"no responders"`` (the
        ratio is undefined) or ``"interval unbounded"`` (the responder rate is not clearly
        above 0 at this level, so the Fieller set is not a finite interval).
    by : tuple of str
        The unit columns.
    level : float
        Confidence level.
    currency : str
        Reporting currency.
    method : str
        The method, in words.
    """

    table: pd.DataFrame
    by: tuple[str, ...]
    level: float
    currency: str
    method: str

    def to_frame(self) -> pd.DataFrame:
        """The ranked table (a copy)."""
        return self.table.copy()


RANKING_METHOD = (
    "Cost per responder = mean cost ÷ responder rate (= total cost ÷ responders) per unit, "
    "among patients with a known cost and responder status; both procedures pooled unless the "
    "selection holds one. 95% CI by Fieller's theorem for a ratio of two correlated means "
    "(cost and the responder indicator of the same patients, their sample covariance "
    "included), normal quantile (Fieller 1954; Polsky et al. 1997). Units are ranked by the "
    "estimate, lowest first; the ranking is descriptive: units differ in case mix, procedure "
    "mix and prices, and overlapping intervals mean the order is uncertain.")


def fieller_ratio_interval(mean_a: NDArray[np.float64], mean_b: NDArray[np.float64],
                           var_a: NDArray[np.float64], var_b: NDArray[np.float64],
                           cov_ab: NDArray[np.float64], z: float
                           ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Fieller's confidence limits for ``mean_a / mean_b`` (vectorised).

    The set of ratios θ with ``(a − θ b)² ≤ z² (var_a − 2 θ cov + θ² var_b)``: the roots of
    ``θ² (b² − z² var_b) − 2 θ (a b − z² cov) + (a² − z² var_a) = 0``. It is a finite interval
    only when ``b² > z² var_b`` (the denominator is significantly different from 0); NaN
    limits otherwise.

    Examples
    --------
    >>> low, high = fieller_ratio_interval(np.array([10.0]), np.array([0.5]),
    ...                                    np.array([1.0]), np.array([0.0025]),
    ...                                    np.array([0.0]), 1.959964)
    >>> round(float(low[0]), 2), round(float(high[0]), 2)
    (15.09, 26.51)
    """
    a, b = np.asarray(mean_a, float), np.asarray(mean_b, float)
    quad = b * b - z * z * np.asarray(var_b, float)
    half = a * b - z * z * np.asarray(cov_ab, float)
    const = a * a - z * z * np.asarray(var_a, float)
    disc = half * half - quad * const
    bounded = (quad > 0) & (disc >= 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        root = np.sqrt(np.where(bounded, disc, np.nan))
        low = np.where(bounded, (half - root) / quad, np.nan)
        high = np.where(bounded, (half + root) / quad, np.nan)
    return low, high


def ranked_cost_per_responder(
    records: pd.DataFrame,
    by: str | Sequence[str] = "region",
    responder: Any = None,
    options: CostOptions | None = None,
    *,
    responders: pd.Series | Sequence[bool | None] | None = None,
    conversion: CostConversion | None = None,
    level: float = 0.95,
) -> CostPerResponderRanking:
    """Cost per responder per unit (e.g. region or facility), ranked, with Fieller CIs.

    Parameters
    ----------
    records : pandas.DataFrame
        Procedure records.
    by : str or sequence of str, default "region"
        The unit columns (e.g. ``("country", "region")`` or ``"facility_id"``); procedures
        are pooled within a unit.
    responder, options, responders, conversion
        As in :func:`cost_per_responder`.
    level : float, default 0.95
        Confidence level.

    Returns
    -------
    CostPerResponderRanking

    Notes
    -----
    On the n patients of a unit with both a cost c and a responder indicator r, the estimate
    is ``mean(c) / mean(r)``. Its interval is Fieller's (1954) for a ratio of means, with the
    sample variances of c and r and their sample covariance divided by n (the two means come
    from the same patients, so they are correlated; Polsky, Glick, Willke & Schulman 1997
    compared Fieller's with bootstrap and delta-method intervals for cost-effectiveness
    ratios and found Fieller's accurate). A unit without responders has no estimate; a unit
    whose responder rate is not clearly above 0 has an estimate but an unbounded interval.

    References: Fieller EC. Some problems in interval estimation. J R Stat Soc B
    1954;16:175-185. Polsky D, Glick HA, Willke R, Schulman K. Confidence intervals for
    cost-effectiveness ratios: a comparison of four methods. Health Econ 1997;6:243-252.

    Examples
    --------
    >>> rows = pd.DataFrame({"region": ["N"] * 4 + ["S"] * 4, "cost": [100.0, 200, 300, 400] * 2,
    ...                      "currency": "USD", "procedure_date": pd.Timestamp("2024-01-02")})
    >>> result = ranked_cost_per_responder(
    ...     rows, responders=[True, True, False, True, True, False, False, False])
    >>> result.table["region"].tolist(), result.table["cost_per_responder"].round(1).tolist()
    (['N', 'S'], [333.3, 1000.0])
    >>> result.table["status"].tolist()
    ['estimated', 'interval unbounded']
    """
    if not 0 < level < 1:
        raise ValueError("level must be between 0 and 1")
    by = _as_tuple(by)
    if not by:
        raise ValueError("rank by at least one unit column")
    status = _responder_status(records, responder, responders)
    codes, keys = _groups(records, by)
    options, conversion = _use_conversion(records, options, conversion)
    cost = conversion.values
    known = status.notna().to_numpy() & ~np.isnan(cost)
    resp = (status.to_numpy(dtype=bool, na_value=False) & known).astype(float)
    cost0 = np.where(known, cost, 0.0)
    n_groups = len(keys)
    n = np.bincount(codes, weights=known, minlength=n_groups)
    sum_c = np.bincount(codes, weights=cost0, minlength=n_groups)
    sum_r = np.bincount(codes, weights=resp, minlength=n_groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_c = sum_c / n
        mean_r = sum_r / n
        # Two-pass sample (co)variances (deviations from each group's mean), over the known.
        dev_c = np.where(known, cost0 - mean_c[codes], 0.0)
        dev_r = np.where(known, resp - mean_r[codes], 0.0)
        s_cc = np.bincount(codes, weights=dev_c * dev_c, minlength=n_groups) / (n - 1)
        s_rr = np.bincount(codes, weights=dev_r * dev_r, minlength=n_groups) / (n - 1)
        s_cr = np.bincount(codes, weights=dev_c * dev_r, minlength=n_groups) / (n - 1)
        ratio = np.where(sum_r > 0, sum_c / np.where(sum_r > 0, sum_r, 1.0), np.nan)
    z = float(st.norm.ppf(0.5 + level / 2))
    with np.errstate(invalid="ignore", divide="ignore"):  # units with n = 0 are dropped below
        low, high = fieller_ratio_interval(mean_c, mean_r, s_cc / n, s_rr / n, s_cr / n, z)
    state = np.where(sum_r <= 0, "no responders",
                     np.where(np.isnan(low), "interval unbounded", "estimated"))
    table = pd.concat([keys.reset_index(drop=True), pd.DataFrame({
        "n": n.astype(np.int64), "responders": sum_r.astype(np.int64),
        "responder_rate": np.where(n > 0, mean_r, np.nan),
        "mean_cost": np.where(n > 0, mean_c, np.nan), "cost_per_responder": ratio,
        "low": low, "high": high, "status": state})], axis=1)
    table = table[table["n"] > 0]
    table = table.sort_values(["cost_per_responder"], kind="mergesort", na_position="last")
    ranks = np.arange(1, len(table) + 1, dtype=float)
    table["rank"] = np.where(table["cost_per_responder"].notna(), ranks, np.nan)
    table = table.reset_index(drop=True)
    table.attrs = {"notes": conversion.notes}
    return CostPerResponderRanking(table=table, by=by, level=level,
                                   currency=options.reporting_currency, method=RANKING_METHOD)
