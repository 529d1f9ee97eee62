"""Saved views: a named page address (path and query string) that its owner finds again, and
that an admin may publish to everyone.

A view holds only what the address holds: the page and its filters and settings. The caller
(:mod:`dashboard.views`) rebuilds the query string from the parsed filters and settings, so no
other text reaches the store; the name is checked like audit values (no e-mail address, SSN or
phone number). Saving, publishing and deleting are audited in the same transaction.
Opening a view never widens what a user sees: the records a page reads are restricted to the
user's facilities whatever the view's filters say (:mod:`dashboard.data_access`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import sqlalchemy as sa

from data import audit, store
from data.store import saved_views

MAX_NAME = 80
MAX_QUERY = 2000


class ViewError(ValueError):
    """A view was refused (bad name or address, unknown view, not permitted)."""


@dataclasses.dataclass(frozen=True)
class SavedView:
    """One saved view: its id, name, owner, page path, query string and whether published."""

    view_id: int
    name: str
    owner: str
    path: str
    query: str
    published: bool

    @property
    def address(self) -> str:
        """The page address to open (``/costs?cur=INR``)."""
        return self.path + self.query


def _check(name: str, path: str, query: str) -> str:
    name = " ".join(str(name or "").split())
    if not name or len(name) > MAX_NAME or not name.isprintable():
        raise ViewError(f"a view needs a name of 1 to {MAX_NAME} printable characters")
    if audit._looks_like_identifier(name):  # noqa: SLF001 - the audit log's own PHI check
        raise ViewError("the name looks like a direct identifier (e-mail, SSN or phone "
                        "number); views never hold patient information")
    if not path.startswith("/") or len(path) > 64:
        raise ViewError(f"not a page path: {path!r}")
    if query and (not query.startswith("?") or len(query) > MAX_QUERY):
        raise ViewError("not a query string of at most 2,000 characters")
    return name


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def save_view(database: str | None, owner: str, name: str, path: str, query: str,
              published: bool = False) -> SavedView:
    """Save a named view of ``owner`` (audited as ``view_saved``; ``published`` only for an
    admin, which the caller checks).

    >>> save_view("sqlite:///store.db", "alice", "Embolism, FAC-009", "/quality",
    ...           "?outcome=pulmonary_embolism&cusum=FAC-009")  # doctest: +SKIP
    """
    name = _check(name, path, query)
    row = {"owner": owner, "name": name, "path": path, "query": query,
           "published": bool(published), "created_at": _now()}
    with store.get_engine(database).begin() as connection:
        view_id = connection.execute(saved_views.insert().values(**row)).inserted_primary_key[0]
        audit.write_event(connection, owner, "view_saved",
                          {"view_id": int(view_id), "page": path, "query": query,
                           "published": bool(published)})
    return SavedView(int(view_id), name, owner, path, query, bool(published))


def list_views(database: str | None, owner: str) -> list[SavedView]:
    """The views ``owner`` may open: their own and every published one, by name."""
    table = saved_views
    with store.get_engine(database).connect() as connection:
        rows = connection.execute(
            sa.select(table).where(sa.or_(table.c.owner == owner, table.c.published.is_(True)))
            .order_by(table.c.name, table.c.view_id)).all()
    return [SavedView(int(r.view_id), r.name, r.owner, r.path, r.query, bool(r.published))
            for r in rows]


def _get(connection, view_id: int):
    row = connection.execute(sa.select(saved_views).where(
        saved_views.c.view_id == int(view_id))).first()
    if row is None:
        raise ViewError(f"no saved view {view_id}")
    return row


def publish_view(database: str | None, view_id: int, actor: str, published: bool = True) -> None:
    """Publish a view to everyone (or withdraw it); the caller checks that ``actor`` is an admin.
    Audited as ``view_published``."""
    with store.get_engine(database).begin() as connection:
        row = _get(connection, view_id)
        connection.execute(saved_views.update().where(saved_views.c.view_id == row.view_id)
                           .values(published=bool(published)))
        audit.write_event(connection, actor, "view_published",
                          {"view_id": int(row.view_id), "page": row.path,
                           "published": bool(published)})


def delete_view(database: str | None, view_id: int, actor: str, admin: bool = False) -> None:
    """Delete a view: its owner may, and an admin may delete any. Audited as ``view_deleted``."""
    with store.get_engine(database).begin() as connection:
        row = _get(connection, view_id)
        if row.owner != actor and not admin:
            raise ViewError("only the owner or an admin may delete this view")
        connection.execute(saved_views.delete().where(saved_views.c.view_id == row.view_id))
        audit.write_event(connection, actor, "view_deleted",
                          {"view_id": int(row.view_id), "page": row.path})
