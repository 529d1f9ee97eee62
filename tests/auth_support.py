"""Helpers for the sign-in tests: auth configurations with accounts, sign-in, callback posts."""

from __future__ import annotations

import re
import secrets
from pathlib import Path

from dashboard.auth import users as users_file

PASSWORD = "correct-horse-battery"


def write_private(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)
    return path


def auth_dir(folder: Path, accounts: dict[str, tuple[str, list[str] | None]],
             secure: bool = False, extra: str = "", hours: float = 1) -> Path:
    """An auth configuration in ``folder`` with ``accounts`` {name: (role, facilities)}, all
    with :data:`PASSWORD`; returns the path of ``auth.toml``."""
    folder.mkdir(parents=True, exist_ok=True)
    write_private(folder / "secret_key", secrets.token_urlsafe(48))
    users_file.write_new(folder / "users.json")
    for name, (role, facilities) in accounts.items():
        users_file.add_user(folder / "users.json", name, role, PASSWORD, facilities)
    return write_private(folder / "auth.toml", (
        'users_file = "users.json"\nsecret_key_file = "secret_key"\n'
        f"session_cookie_secure = {'true' if secure else 'false'}\nsession_hours = {hours}\n"
        f"{extra}"))


def csrf_token(client) -> str:
    page = client.get("/login").get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def sign_in(client, name: str, password: str = PASSWORD, next_url: str | None = None):
    data = {"username": name, "password": password, "csrf_token": csrf_token(client)}
    if next_url is not None:
        data["next"] = next_url
    return client.post("/login", data=data)


def callback_payload(app, output: str, values: dict[tuple[str, str], object] | None = None,
                     changed: list[str] | None = None) -> dict:
    """The JSON the browser posts to ``/_dash-update-component`` for the callback of
    ``output`` (a key of ``app.callback_map``), with input/state ``values`` by (id, prop)."""
    values = values or {}
    entry = app.callback_map[output]

    def item(spec):
        return {"id": spec["id"], "property": spec["property"],
                "value": values.get((spec["id"], spec["property"]))}

    outputs = []
    for part in output[2:-2].split("...") if output.startswith("..") else [output]:
        ident, prop = part.rsplit(".", 1)
        outputs.append({"id": ident, "property": prop})
    return {
        "output": output,
        "outputs": outputs if output.startswith("..") else outputs[0],
        "inputs": [item(spec) for spec in entry["inputs"]],
        "state": [item(spec) for spec in entry["state"]],
        "changedPropIds": changed or [f"{s['id']}.{s['property']}" for s in entry["inputs"][:1]],
    }


def _layout_props(node):
    if isinstance(node, dict):
        if isinstance(node.get("props"), dict):
            yield node["props"]
        for value in node.values():
            yield from _layout_props(value)
    elif isinstance(node, list):
        for value in node:
            yield from _layout_props(value)


def sign_out_token(client) -> str:
    """The CSRF token of the navigation bar's sign-out form (from ``/_dash-layout``)."""
    layout = client.get("/_dash-layout").get_json()
    return next(props["value"] for props in _layout_props(layout)
                if props.get("id") == "sign-out-csrf")


def sign_out(client):
    """Post the navigation bar's sign-out form, as the browser does."""
    return client.post("/logout", data={"csrf_token": sign_out_token(client)})
