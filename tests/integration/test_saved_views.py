"""Saved views (issue 14, item 1): stored with their owner, published by admins, audited, the
schema migrated, and never widening a facility restriction when opened."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from analysis.filters import RecordFilter
from dashboard.auth import User
from data import audit, store
from data import views as saved


def test_save_list_publish_delete_and_audit(database):
    view = saved.save_view(database, "alice", "  Embolism,   FAC-009 ", "/quality",
                           "?outcome=pulmonary_embolism&cusum=FAC-009")
    assert view.name == "Embolism, FAC-009"
    assert view.address == "/quality?outcome=pulmonary_embolism&cusum=FAC-009"
    assert [v.view_id for v in saved.list_views(database, "alice")] == [view.view_id]
    assert saved.list_views(database, "bob") == []  # not published: the owner's only

    saved.publish_view(database, view.view_id, "adm")
    assert [v.name for v in saved.list_views(database, "bob")] == ["Embolism, FAC-009"]
    with pytest.raises(saved.ViewError, match="owner or an admin"):
        saved.delete_view(database, view.view_id, "bob")
    saved.delete_view(database, view.view_id, "alice")
    assert saved.list_views(database, "bob") == []

    events = audit.read_events(database, limit=10)
    assert list(events["action"])[:3] == ["view_deleted", "view_published", "view_saved"]
    assert list(events["actor"])[:3] == ["alice", "adm", "alice"]
    assert events.iloc[2]["detail"]["query"] == "?outcome=pulmonary_embolism&cusum=FAC-009"
    assert audit.verify_chain(database).intact


@pytest.mark.parametrize("name", ["", "x" * 81, "jane.doe@example.org", "call 555-123-4567"])
def test_bad_or_identifying_names_are_refused(database, name):
    with pytest.raises(saved.ViewError):
        saved.save_view(database, "alice", name, "/costs", "?cur=INR")
    with store.get_engine(database).connect() as connection:
        assert connection.execute(sa.select(sa.func.count()).select_from(
            store.saved_views)).scalar_one() == 0


def test_a_version_6_store_gets_the_saved_views_table(database):
    engine = store.get_engine(database)
    with engine.begin() as connection:
        store.saved_views.drop(connection)
        connection.execute(store.store_meta.update().where(
            store.store_meta.c.key == "schema_version").values(value="6"))
    store.dispose_engines()
    assert store.schema_version(database) == store.SCHEMA_VERSION == 7
    assert saved.save_view(database, "alice", "INR", "/costs", "?cur=INR").view_id == 1


def test_the_dialog_saves_the_canonical_address_and_only_admins_publish(dashboard_app,
                                                                        monkeypatch):
    import dash._callback_context as cc
    from dash._utils import AttributeDict

    from dashboard import views
    from tests.dash_tree import texts

    app, _ = dashboard_app
    database = app.server.config["VA_DATABASE"]

    def press(user, trigger, name="", publish=False, search=""):
        monkeypatch.setattr(views, "current_user", lambda: user)
        with app.server.test_request_context("/"):
            token = cc.context_value.set(AttributeDict(triggered_inputs=[
                {"prop_id": trigger, "value": 1}]))
            try:
                return views.update_views(None, 1, [], [], name, publish, "/costs", search)
            finally:
                cc.context_value.reset(token)

    viewer = User("vic", "viewer")
    listing, status = press(viewer, "view-save.n_clicks", "India in rupees", publish=True,
                            search="?country=IN&cur=INR&junk=<b>x</b>&group=bogus")
    assert status == "Saved “India in rupees”."
    mine = saved.list_views(database, "vic")
    # Unknown keys and bad values are not stored; a viewer's "publish" is ignored.
    assert [(v.query, v.published) for v in mine] == [("?country=IN&cur=INR", False)]
    assert "India in rupees" in texts(listing)
    _, status = press(viewer, "view-save.n_clicks", "")
    assert "needs a name" in status

    admin = User("adm", "admin")
    press(admin, "view-save.n_clicks", "Everyone: costs by region", publish=True,
          search="?group=region")
    assert [v.name for v in saved.list_views(database, "vic")] == [
        "Everyone: costs by region", "India in rupees"]


def test_opening_a_view_never_widens_a_facility_restriction(dashboard_app, monkeypatch):
    from dashboard import data_access
    from dashboard.state import filter_from_query

    app, records = dashboard_app
    database = app.server.config["VA_DATABASE"]
    facilities = sorted(records["facility_id"].unique())
    own, other = facilities[0], facilities[1]
    view = saved.save_view(database, "adm", "Another facility", "/", f"?facility={other}",
                           published=True)
    monkeypatch.setattr(data_access, "current_user", lambda: User("rita", "viewer", (own,)))
    with app.server.app_context():
        shown = data_access.filtered_records(filter_from_query(view.query), ["facility_id"])
        everything = data_access.filtered_records(RecordFilter(), ["facility_id"])
    assert shown.empty
    assert set(everything["facility_id"]) == {own}
