"""Public search shows each listing as its owner shows it to the public (``*``), never
through the hub's view (issue: trust the hub, finding "public search shows a public
expert's name, affiliation and job title from the listing's hub view").

The default policy sends experts to the hub only and has no ``*`` rule, so nothing of vn's
public expert may appear in public search; once vn adds a ``*`` rule, search shows
exactly the view ``cattc policy explain --audience '*'`` prints, and when vn takes the
rule away again the listing leaves search although the hub still holds its hub view.
"""

from __future__ import annotations

from typing import Any

import aiohttp

from policies import default_policy_yaml
from tests.federation.network import Network, NodeFactory, allowed_for, held_by
from tests.hub.helpers import cattc, cattc_json, get_json, start_hub_network

EXPERT = "vn-exp-0002"  # public, with name/logo consent: the hub's view names the person
PUBLIC_EXPERTS = """\
  - audience: "*"
    category: expert
    visibility: [public]
    fields: [title, keywords, job_title]
"""


async def _search(http: aiohttp.ClientSession, net: Network) -> dict[tuple[str, str], Any]:
    status, body = await get_json(http, net.hub.url + "/api/v1/search", params={"limit": 100})
    assert status == 200, body
    return {(i["owner"], i["listing"]["id"]): i["listing"] for i in body["items"]}


async def _sync(net: Network) -> None:
    runs = await net.hub.sync.sync_all()
    assert all(r.error is None for r in runs), [r.error for r in runs]


async def test_public_search_shows_the_owners_public_view_only(
    node_factory: NodeFactory, http: aiohttp.ClientSession
) -> None:
    net = await start_hub_network(node_factory, ["vn", "th"], load_hub_sample=False)
    await _sync(net)
    vn = net.nodes["vn"]
    hub_view = held_by(net.hub, "vn")[EXPERT]
    assert "name" in hub_view["fields"]  # the hub itself may see the person's name

    found = await _search(http, net)
    for owner, lid in found:
        public = allowed_for(net.node(owner), "*").get(lid)
        assert public is not None, f"{owner}/{lid} is in public search without a '*' rule"
    assert found == {}  # no '*' rule anywhere in the default policies

    vn.runtime.policy.apply(default_policy_yaml("cn") + PUBLIC_EXPERTS, author="test")
    await _sync(net)
    found = await _search(http, net)
    assert set(found) == {("vn", EXPERT)}
    listing = found[("vn", EXPERT)]
    assert set(listing["fields"]) == {"title", "keywords", "job_title"}
    assert listing["fields"] == allowed_for(vn, "*")[EXPERT]["fields"]
    words = " ".join(str(v) for v in listing["fields"].values())
    assert hub_view["fields"]["name"] not in words
    assert hub_view["fields"]["affiliation"] not in words

    explained = await cattc_json("policy", vn.data_dir, "explain", EXPERT, "--audience", "*")
    assert explained["shared"] is True and explained["matched"] == "*"
    assert explained["view"]["listing"] == listing
    status, body = await vn.admin(
        http, "GET", f"/admin/v1/policy/explain/{EXPERT}", params={"audience": "*"}
    )
    assert status == 200 and body["view"]["listing"] == listing, body

    # The owner takes its '*' rule away: the listing leaves search, the hub keeps its view.
    vn.runtime.policy.apply(default_policy_yaml("cn"), author="test")
    await _sync(net)
    assert await _search(http, net) == {}
    assert EXPERT in held_by(net.hub, "vn")
    explained = await cattc_json("policy", vn.data_dir, "explain", EXPERT, "--audience", "*")
    assert explained["shared"] is False and explained["code"] == "no_rule"


async def test_the_hubs_own_listing_in_search_is_its_explained_public_view(
    node_factory: NodeFactory, http: aiohttp.ClientSession
) -> None:
    net = await start_hub_network(node_factory, [])
    rt = net.hub.runtime
    rt.policy.apply(
        default_policy_yaml("cn")
        + '  - audience: "*"\n    category: tech_offer\n    visibility: [public]\n'
        + "    fields: [title, summary, organization.type]\n",
        author="test",
    )
    found = await _search(http, net)
    assert found
    lid = sorted(lid for _, lid in found)[0]
    explained = await cattc_json("policy", net.hub.data_dir, "explain", lid, "--audience", "*")
    assert explained["view"]["listing"] == found[("cn", lid)]
    text = await cattc("policy", net.hub.data_dir, "explain", lid, "--audience", "*")
    assert text.exit_code == 0, text.output
    assert "by '*'" in text.stdout
    assert "public search at the hub shows this view's listing" in text.stdout
