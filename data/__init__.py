"""Data layer: the data dictionary, validated import, the record store and the demo data.

The functions analysts use in notebooks::

    from data import load_records, import_file, demo_records, dictionary

    records = load_records()          # typed DataFrame, one row per procedure
    result = import_file("export.csv")  # accounting of the import batch
    demo = demo_records(5000, seed=1)   # synthetic, literature-calibrated records
    dictionary()                        # one row per field
"""

from data.dictionary import FIELD_NAMES, FIELDS, dictionary
from data.importer import ImportRefused, ImportResult, import_dataframe, import_file
from data.load import load_records
from data.store import StoreError, data_version, record_count
from data.validation import record_schema, validate_records

__all__ = [
    "FIELDS",
    "FIELD_NAMES",
    "ImportRefused",
    "ImportResult",
    "StoreError",
    "data_version",
    "demo_records",
    "dictionary",
    "import_dataframe",
    "import_file",
    "load_records",
    "record_count",
    "record_schema",
    "validate_records",
]


def __getattr__(name: str):
    # The generator is only imported when it is used (the app imports it only for an empty store).
    if name == "demo_records":
        from data.demo import demo_records

        return demo_records
    raise AttributeError(f"module 'data' has no attribute {name!r}")
