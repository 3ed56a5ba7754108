"""The hub operator's directory page: adding a member whose real node serves its identity
(fetch, then confirm what was shown), a key that changes in between refused, errors in
place, update, suspension with its confirmation, the audit, and who may do what."""

from __future__ import annotations

import json

import aiohttp

from node.services.member_identity import key_fingerprint
from tests.federation.network import NodeFactory, hub_key
from tests.hub.hubops_pages import audit_entries, staff
from tests.nodes import RunningNode

PAGE = "/console/hub/directory"


async def hub_and_th(node_factory: NodeFactory) -> tuple[RunningNode, RunningNode]:
    hub = await node_factory("cn", is_hub=True)
    th = await node_factory("th", hub_url=hub.url, hub_key=hub_key(hub), hub_id="cn")
    return hub, th


def th_form(th: RunningNode, **changes: str) -> dict[str, str]:
    return {
        "node_id": "th",
        "name": "Bangkok TTC",
        "country": "th",
        "base_url": th.url,
        "groups": "mou, asean",
        **changes,
    }


def th_fingerprint(th: RunningNode) -> str:
    keys = th.runtime.keys.verify_keys()
    return key_fingerprint(keys[th.runtime.keys.active.name].b64)


async def test_add_with_fetched_key_then_suspend(
    node_factory: NodeFactory, http: aiohttp.ClientSession
) -> None:
    hub, th = await hub_and_th(node_factory)
    admin = staff(http, hub, "mei", "admin")
    directory = hub.runtime.directory
    start = directory.version()

    page = await admin.get(PAGE)
    assert page.status == 200 and "Add member" in page.text
    assert "The directory has no members yet." in page.text

    shown = await admin.post(PAGE + "/fetch", th_form(th))
    assert shown.status == 200, shown.text
    assert th_fingerprint(th) in shown.text  # what the operator compares
    assert directory.get("th") is None  # nothing saved before the confirmation
    keys = json.loads(shown.hidden("keys"))
    assert keys == {"ed25519:1": th.runtime.keys.verify_keys()["ed25519:1"].b64}
    assert keys["ed25519:1"] in shown.text  # the full key, as `cattc keys show` prints it

    fields = {n: shown.hidden(n) for n in ("node_id", "name", "country", "base_url", "groups")}
    saved = await admin.post(PAGE + "/add", {**fields, "keys": shown.hidden("keys")})
    assert (saved.status, saved.location) == (303, PAGE + "?done=added"), saved.text
    member = directory.get("th")
    assert member is not None
    assert (member.name, member.country, member.groups) == ("Bangkok TTC", "TH", ["asean", "mou"])
    assert {n: k["key"] for n, k in member.keys.items()} == keys
    assert member.sources == {"ed25519:1": "fetch"}
    assert directory.version() == start + 1
    (entry,) = audit_entries(hub, "directory.add")
    assert (entry.actor, entry.target) == ("mei", "th")
    detail = json.loads(entry.detail)
    assert detail["keys"] == {"ed25519:1": th_fingerprint(th)}
    assert detail["directory_version"] == start + 1

    listed = await admin.get(PAGE + "?done=added")
    assert "The member was added." in listed.text
    assert 'id="member-th"' in listed.text and th_fingerprint(th) in listed.text

    ask = await admin.get(PAGE + "/th/status?to=suspended")
    assert ask.status == 200 and "Yes, suspend it" in ask.text
    assert directory.get("th").status == "active"  # type: ignore[union-attr]  # only asked
    done = await admin.post(PAGE + "/th/status", {"status": "suspended"})
    assert (done.status, done.location) == (303, PAGE + "?done=suspended")
    assert directory.get("th").status == "suspended"  # type: ignore[union-attr]
    assert directory.version() == start + 2
    (entry,) = audit_entries(hub, "directory.suspend")
    assert (entry.actor, entry.target) == ("mei", "th")

    # The signed directory every member mirrors says so, in its new version.
    doc = hub.runtime.directory_document()
    assert doc["version"] == start + 2
    assert [m["status"] for m in doc["members"] if m["node_id"] == "th"] == ["suspended"]

    back = await admin.post(PAGE + "/th/status", {"status": "active"})
    assert back.status == 303 and directory.get("th").status == "active"  # type: ignore[union-attr]
    assert [e.target for e in audit_entries(hub, "directory.reactivate")] == ["th"]


async def test_a_key_changed_between_fetch_and_confirm_is_refused(
    node_factory: NodeFactory, http: aiohttp.ClientSession
) -> None:
    hub, th = await hub_and_th(node_factory)
    admin = staff(http, hub, "mei", "admin")
    shown = await admin.post(PAGE + "/fetch", th_form(th))
    assert shown.status == 200
    fields = {n: shown.hidden(n) for n in ("node_id", "name", "country", "base_url", "groups")}

    rt = th.runtime
    rt.keys = rt.keys.rotate(rt.clock())  # whoever answers at th's URL now has another key

    refused = await admin.post(PAGE + "/add", {**fields, "keys": shown.hidden("keys")})
    assert refused.status == 409
    assert "changed after you fetched it" in refused.text and 'role="alert"' in refused.text
    assert hub.runtime.directory.get("th") is None
    assert audit_entries(hub, "directory.add") == []

    # Keys that were never shown (edited in the form) are refused the same way.
    forged = json.dumps({"ed25519:1": rt.keys.verify_keys()["ed25519:2"].b64})
    again = await admin.post(PAGE + "/add", {**fields, "keys": forged})
    assert again.status == 409 and hub.runtime.directory.get("th") is None
    garbled = await admin.post(PAGE + "/add", {**fields, "keys": "not json"})
    assert garbled.status == 400 and "did not carry the keys" in garbled.text


async def test_errors_are_shown_beside_their_fields(
    node_factory: NodeFactory, http: aiohttp.ClientSession
) -> None:
    hub, th = await hub_and_th(node_factory)
    admin = staff(http, hub, "mei", "admin")

    bad = await admin.post(
        PAGE + "/fetch",
        {"node_id": "TH!", "name": "", "country": "XX", "base_url": "ftp://th", "groups": "a b!"},
    )
    assert bad.status == 400
    for name in ("node_id", "name", "country", "base_url", "groups"):
        assert f'id="m-{name}-error"' in bad.text, name
    assert bad.text.count('aria-invalid="true"') == 5
    assert 'value="TH!"' in bad.text  # what was typed stays in the form

    wrong_node = await admin.post(PAGE + "/fetch", th_form(th, node_id="vn", country="VN"))
    assert wrong_node.status == 400
    assert f"{th.url} is not node &#39;vn&#39;" in wrong_node.text
    assert 'id="m-base_url-error"' in wrong_node.text

    nobody = th.url.rsplit(":", 1)[0] + ":9"  # the discard port: nothing answers there
    unreachable = await admin.post(PAGE + "/fetch", th_form(th, base_url=nobody))
    assert unreachable.status == 400
    assert "cannot fetch identity" in unreachable.text and 'role="alert"' in unreachable.text
    assert hub.runtime.directory.members() == []

    ok = await admin.post(PAGE + "/fetch", th_form(th))
    fields = {n: ok.hidden(n) for n in ("node_id", "name", "country", "base_url", "groups")}
    await admin.post(PAGE + "/add", {**fields, "keys": ok.hidden("keys")})
    twice = await admin.post(PAGE + "/fetch", th_form(th))
    assert twice.status == 409 and "a member already" in twice.text


async def test_update_name_address_and_groups(
    node_factory: NodeFactory, http: aiohttp.ClientSession
) -> None:
    hub, th = await hub_and_th(node_factory)
    admin = staff(http, hub, "mei", "admin")
    ok = await admin.post(PAGE + "/fetch", th_form(th))
    fields = {n: ok.hidden(n) for n in ("node_id", "name", "country", "base_url", "groups")}
    await admin.post(PAGE + "/add", {**fields, "keys": ok.hidden("keys")})
    directory = hub.runtime.directory
    version = directory.version()

    form = await admin.get(PAGE + "/th/edit")
    assert form.status == 200 and 'value="Bangkok TTC"' in form.text
    bad = await admin.post(PAGE + "/th/edit", {"name": "x", "base_url": "th", "groups": ""})
    assert bad.status == 400 and 'id="m-base_url-error"' in bad.text
    assert directory.version() == version

    new_url = th.url + "/"
    done = await admin.post(
        PAGE + "/th/edit", {"name": "Thailand TTC", "base_url": new_url, "groups": "mou"}
    )
    assert (done.status, done.location) == (303, PAGE + "?done=updated")
    member = directory.get("th")
    assert member is not None
    assert (member.name, member.base_url, member.groups) == ("Thailand TTC", new_url, ["mou"])
    assert member.sources == {"ed25519:1": "fetch"}  # keys untouched
    assert directory.version() == version + 1
    (entry,) = audit_entries(hub, "directory.update")
    assert entry.actor == "mei"
    assert json.loads(entry.detail)["groups"] == {"from": ["asean", "mou"], "to": ["mou"]}

    missing = await admin.get(PAGE + "/zz/edit")
    assert missing.status == 404 and "No such member" in missing.text
    assert (await admin.post(PAGE + "/zz/status", {"status": "suspended"})).status == 404
    gone = await admin.post(PAGE + "/th/status", {"status": "gone"})
    assert gone.status == 400 and "can only be suspended or reactivated" in gone.text
    assert (await admin.get(PAGE + "/th/status?to=deleted")).status == 400


async def test_roles_and_forms(node_factory: NodeFactory, http: aiohttp.ClientSession) -> None:
    hub, th = await hub_and_th(node_factory)
    viewer = staff(http, hub, "lan", "viewer")
    editor = staff(http, hub, "ken", "editor")
    admin = staff(http, hub, "mei", "admin")

    page = await viewer.get(PAGE)
    assert page.status == 200 and "Member directory" in page.text
    assert "Add member" not in page.text and "/fetch" not in page.text
    for who in (viewer, editor):
        assert (await who.post(PAGE + "/fetch", th_form(th))).status == 403
        assert (await who.get(PAGE + "/th/status?to=suspended")).status == 403
    assert (await admin.post(PAGE + "/fetch", th_form(th), csrf=False)).status == 403
    assert hub.runtime.directory.members() == []

    async with http.get(hub.url + PAGE, allow_redirects=False) as resp:
        assert resp.status == 302 and resp.headers["Location"].startswith("/console/login")

    # The hub's link and pages are the hub's only.
    home = await admin.get("/console")
    assert 'href="/console/hub/directory"' in home.text
    th_admin = staff(http, th, "somchai", "admin")
    assert 'href="/console/hub/directory"' not in (await th_admin.get("/console")).text
    assert (await th_admin.get(PAGE)).status == 404
