"""The hub rotates its own key (``cattc keys rotate`` on the hub, then a restart): the
members, which pinned the old key at ``init``, find the next directory signed by a key
they do not know, follow the hand-over the old key signed, pin the new key in node.toml,
and go on syncing. A node whose pinned key has no hand-over to what the directory is
signed with (an impostor hub, or a wrong pin) still refuses it and keeps its pin."""

from __future__ import annotations

from click.testing import CliRunner

from node.cli.main import cli
from node.config import KEY_FILE, load_config
from protocol.b64 import b64url_encode
from protocol.keys import KeyStore
from tests.federation.network import NodeFactory, allowed_for, held_by, hub_key, start_network


async def test_members_follow_the_hub_key_hand_over(node_factory: NodeFactory) -> None:
    net = await start_network(node_factory, ["th", "vn"])
    th, vn, hub = net.nodes["th"], net.nodes["vn"], net.hub
    assert await th.sync.refresh_directory() and await vn.sync.refresh_directory()
    old_key = hub_key(hub)
    old_version = th.runtime.directory.version()

    result = CliRunner().invoke(cli, ["keys", str(hub.data_dir), "rotate"])
    assert result.exit_code == 0, result.output
    assert f"Directory version {old_version + 1} lists the new key" in result.stdout
    hub.runtime.reload_keys()  # what the restart the command asks for does
    new_key = hub_key(hub)
    assert new_key != old_key

    for node in (th, vn):
        assert await node.sync.refresh_directory()  # signed by the new key, accepted
        assert node.runtime.directory.version() == old_version + 1
        assert node.runtime.config.hub_key == new_key
        assert load_config(node.data_dir, environ={}).hub_key == new_key  # survives restarts
        entry = node.runtime.directory.get("cn")
        assert entry is not None and set(entry.keys) == {"ed25519:1", "ed25519:2"}
    # Sync goes on both ways: the hub signs its pages and requests with the new key.
    runs = [*await hub.sync.sync_all(), *await th.sync.sync_all()]
    assert all(r.error is None for r in runs), [r.error for r in runs]
    assert set(held_by(th, "cn")) == set(allowed_for(hub, "th"))
    assert set(held_by(hub, "th")) == set(allowed_for(th, "cn"))


async def test_a_directory_without_a_hand_over_from_the_pin_is_refused(
    node_factory: NodeFactory,
) -> None:
    net = await start_network(node_factory, ["th"])
    th = net.nodes["th"]
    on_disk = load_config(th.data_dir, environ={}).hub_key
    stranger = KeyStore.generate(0, seed=b"\x42" * 32).active.public
    th.runtime.config = th.runtime.config.model_copy(update={"hub_key": b64url_encode(stranger)})
    # The hub's chain of hand-overs is empty, and none starts from this pin either after a
    # rotation: the directory stays refused and the pin stays as it was.
    assert not await th.sync.refresh_directory()
    result = CliRunner().invoke(cli, ["keys", str(net.hub.data_dir), "rotate"])
    assert result.exit_code == 0, result.output
    net.hub.runtime.reload_keys()
    assert not await th.sync.refresh_directory()
    assert th.runtime.config.hub_key == b64url_encode(stranger)
    assert load_config(th.data_dir, environ={}).hub_key == on_disk  # not rewritten
    assert th.runtime.directory.version() == 0


async def test_pulls_of_the_hub_resume_once_the_member_re_pins(
    node_factory: NodeFactory,
) -> None:
    """Between the hub's restart and the member's next directory refresh (at most one
    sync interval), the hub's pages fail against the old pin; the refresh re-pins and
    the next pull takes them."""
    net = await start_network(node_factory, ["th"])
    th, hub = net.nodes["th"], net.hub
    assert await th.sync.refresh_directory()
    result = CliRunner().invoke(cli, ["keys", str(hub.data_dir), "rotate"])
    assert result.exit_code == 0, result.output
    hub.runtime.reload_keys()
    before = await th.sync.sync_peer("cn", force=True)
    assert before is not None and before.error is not None
    assert before.error.startswith("signature_invalid")
    assert held_by(th, "cn") == {}
    assert await th.sync.refresh_directory()
    after = await th.sync.sync_peer("cn", force=True)
    assert after is not None and after.error is None, after
    assert set(held_by(th, "cn")) == set(allowed_for(hub, "th"))


async def test_the_hubs_keys_never_come_from_its_self_signed_identity(
    node_factory: NodeFactory,
) -> None:
    """Whoever answers at the hub's URL can sign an identity document of its own. Here
    the hub's key is replaced without a hand-over (as an impostor would do, or after a
    lost key): refetching the hub's identity adds no key to the member's entry for the
    hub (a member's key would be learnt that way, not the pinned hub's), the pin stays,
    and nothing signed with the new key is taken."""
    net = await start_network(node_factory, ["th"])
    th, hub = net.nodes["th"], net.hub
    assert await th.sync.refresh_directory()
    pinned = th.runtime.config.hub_key
    KeyStore.generate(hub.runtime.clock(), key_id="7", seed=b"\x77" * 32).save(
        hub.data_dir / KEY_FILE
    )
    hub.runtime.reload_keys()
    assert not await th.sync.keys.refresh("cn")
    entry = th.runtime.directory.get("cn")
    assert entry is not None and set(entry.keys) == {"ed25519:1"}
    run = await th.sync.sync_peer("cn", force=True)
    assert run is not None and run.error is not None
    assert run.error.startswith("signature_invalid")
    assert held_by(th, "cn") == {}
    assert not await th.sync.refresh_directory()
    assert th.runtime.config.hub_key == pinned
