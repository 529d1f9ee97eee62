"""Signal acknowledgements: history kept in the store, each review audited; signals seen."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from data import audit, signal_reviews, store

KEY = "funnel|cement_leakage|facility_id|FAC-009|high"


def test_reviews_keep_their_history_and_are_audited(database):
    signal_reviews.record_review(database, KEY, "under review", "case notes requested", "ana")
    signal_reviews.record_review(database, KEY, "explained", "new cement supplier", "bob")
    history = signal_reviews.review_history(database)
    assert history["status"].tolist() == ["under review", "explained"]
    assert history["actor"].tolist() == ["ana", "bob"]
    current = signal_reviews.current_reviews(database)
    assert current.loc[KEY, "status"] == "explained"
    events = audit.read_events(database)
    reviews = events[events["action"] == "signal_review"]
    assert len(reviews) == 2
    assert reviews.iloc[0]["detail"] == {"signal": KEY, "status": "explained",
                                         "note": "new cement supplier"}
    assert audit.verify_chain(database).intact


@pytest.mark.parametrize("status, note, message", [
    ("done", "", "unknown status"),
    ("closed", "x" * 501, "at most 500"),
    ("closed", "call the patient on 555-123-4567", "identifier"),
])
def test_bad_reviews_are_refused_and_nothing_is_written(database, status, note, message):
    with pytest.raises(ValueError, match=message):
        signal_reviews.record_review(database, KEY, status, note, "ana")
    assert signal_reviews.review_history(database).empty
    assert not (audit.read_events(database)["action"] == "signal_review").any()


def test_note_seen_returns_only_the_new_keys(database):
    assert signal_reviews.note_seen(database, ["a", "b"], "v1") == ["a", "b"]
    assert signal_reviews.note_seen(database, ["b", "c", "c"], "v2") == ["c"]
    signal_reviews.note_notified(database, ["a"])
    seen = signal_reviews.first_seen(database)
    assert sorted(seen.index) == ["a", "b", "c"]


def test_a_schema_5_store_gains_the_signal_tables(sqlite_database):
    store.get_engine(sqlite_database)  # a current store
    engine = sa.create_engine(sqlite_database)
    with engine.begin() as connection:
        connection.exec_driver_sql("DROP TABLE signal_reviews")
        connection.exec_driver_sql("DROP TABLE signal_alerts")
        connection.execute(store.store_meta.update().where(
            store.store_meta.c.key == "schema_version").values(value="5"))
    engine.dispose()
    store.dispose_engines()
    assert store.schema_version(sqlite_database) == store.SCHEMA_VERSION
    signal_reviews.record_review(sqlite_database, KEY, "open", "", "ana")
    assert len(signal_reviews.review_history(sqlite_database)) == 1
