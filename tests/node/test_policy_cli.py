"""``cattc init`` and ``cattc policy show|check|apply|explain`` on a real data directory.

What an operator relies on: init installs the default policy as version 1 and writes
policy.yaml; a broken file is refused naming the rule and the key, and changes nothing
(active version, history, policy.yaml, change log); a good one becomes a new version and
puts every live listing back in the change log; explain shows the rule and the exact,
verifiable signed view, or why nothing is shared.
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result
from sqlalchemy import select
from sqlalchemy.orm import Session

from node.cli.main import cli
from node.config import POLICY_FILE
from node.runtime import open_runtime
from node.storage.models import ChangeRow
from policies.write import default_policy_yaml
from protocol.signing import SignatureError, verify_object
from protocol.timeutil import ms_to_iso
from tests.node.sample import sample_records
from tests.node.test_policy_diff import day_ms, loaded_node

DatabaseUrl = Callable[[str], str]


def cattc(*args: str | Path) -> Result:
    return CliRunner().invoke(cli, [str(a) for a in args])


def snapshot(data_dir: Path) -> dict[str, Any]:
    """Everything a refused apply must leave alone."""
    rt = open_runtime(data_dir)
    try:
        active = rt.policy.active()
        return {
            "active": (active.version, active.digest),
            "history": [(v.version, v.digest, v.active) for v in rt.policy.history()],
            "file": (data_dir / POLICY_FILE).read_text(encoding="utf-8"),
            "head": rt.listings.head(),
        }
    finally:
        rt.close()


def changes_after(data_dir: Path, seq: int) -> list[tuple[str, int, str]]:
    rt = open_runtime(data_dir)
    try:
        with Session(rt.engine) as session:
            rows = session.scalars(
                select(ChangeRow).where(ChangeRow.seq > seq).order_by(ChangeRow.seq)
            )
            return [(r.listing_id, r.version, r.kind) for r in rows]
    finally:
        rt.close()


@pytest.fixture
def cn_dir(tmp_path: Path, database_url: DatabaseUrl) -> Path:
    return loaded_node(tmp_path, "cn", database_url("cn"))


# -- 1. init and show --------------------------------------------------------------------
def test_init_installs_the_default_policy_as_version_1_and_show_prints_it(
    tmp_path: Path, database_url: DatabaseUrl
) -> None:
    data_dir = tmp_path / "node"
    url = database_url("fresh")
    made = cattc("init", data_dir, "--node-id", "cn", "--country", "CN", "--database-url", url)
    assert made.exit_code == 0, made.output
    assert f"sharing policy: default, version 1 ({data_dir / POLICY_FILE})" in made.stdout

    text = (data_dir / POLICY_FILE).read_text(encoding="utf-8")
    assert text == default_policy_yaml("cn")
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()

    shown = cattc("policy", data_dir, "show", "--json")
    assert shown.exit_code == 0, shown.output
    current = json.loads(shown.stdout)
    assert current["version"] == 1 and current["active"] is True
    assert current["text"] == text and current["digest"] == digest
    assert current["author"] == "cattc init (default)"

    plain = cattc("policy", data_dir, "show")
    assert plain.exit_code == 0, plain.output
    first, _, rest = plain.stdout.partition("\n")
    assert first == (
        f"# version 1 by cattc init (default) at {ms_to_iso(current['created'])}, "
        f"sha256 {digest[:16]}"
    )
    assert rest == text.rstrip() + "\n"

    rt = open_runtime(data_dir)
    try:
        assert [(v.version, v.active) for v in rt.policy.history()] == [(1, True)]
    finally:
        rt.close()


# -- 3. broken files are refused and change nothing --------------------------------------
def _default_data() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(default_policy_yaml("cn"))
    return data


def _unknown_field_in_rule_3() -> str:
    data = _default_data()
    assert (data["rules"][2]["audience"], data["rules"][2]["category"]) == ("cn", "expert")
    data["rules"][2]["fields"].append("salary")
    return yaml.safe_dump(data, sort_keys=False)


def _misspelt_key_in_rule_2() -> str:
    data = _default_data()
    data["rules"][1]["visibilty"] = data["rules"][1].pop("visibility")
    return yaml.safe_dump(data, sort_keys=False)


def _unknown_category_in_rule_5() -> str:
    data = _default_data()
    data["rules"][4]["category"] = "patent"
    return yaml.safe_dump(data, sort_keys=False)


def _duplicate_rule() -> str:
    data = _default_data()
    data["rules"].append(copy.deepcopy(data["rules"][3]))  # mou tech_offer again, as rule 8
    return yaml.safe_dump(data, sort_keys=False)


def _bad_yaml() -> str:
    return default_policy_yaml("cn") + "  - audience: [th\n    category: tech_offer\n"


BROKEN: dict[str, tuple[Callable[[], str], list[str]]] = {
    "unknown field in rule 3": (
        _unknown_field_in_rule_3,
        ["rule 3 (audience cn, category expert)", "key 'fields'", "unknown field 'salary'"],
    ),
    "misspelt key in rule 2": (
        _misspelt_key_in_rule_2,
        ["rule 2 (audience cn, category tech_request)", "key 'visibilty'", "unknown rule key"],
    ),
    "unknown category": (
        _unknown_category_in_rule_5,
        ["rule 5 (audience mou, category patent)", "key 'category'", "unknown category 'patent'"],
    ),
    "duplicate rule": (
        _duplicate_rule,
        [
            "rule 8 (audience mou, category tech_offer)",
            "key 'audience'",
            "duplicate rule: rule 4 already covers audience mou for category tech_offer",
        ],
    ),
    "bad yaml": (_bad_yaml, ["not valid YAML", "at line"]),
}


def test_broken_policy_is_refused_naming_rule_and_key_and_changes_nothing(
    cn_dir: Path, tmp_path: Path
) -> None:
    # start from a second version, so "unchanged" is not just "still the default"
    good = tmp_path / "good.yaml"
    good.write_text(_default_data_as_narrower(), encoding="utf-8")
    assert cattc("policy", cn_dir, "apply", good, "--author", "ops").exit_code == 0
    before = snapshot(cn_dir)
    assert before["active"][0] == 2 and len(before["history"]) == 2

    for name, (make, expected) in BROKEN.items():
        path = tmp_path / "broken.yaml"
        path.write_text(make(), encoding="utf-8")
        for command in ("apply", "check", "diff"):
            result = cattc("policy", cn_dir, command, path)
            assert result.exit_code == 1, (name, command, result.output)
            for piece in expected:
                assert piece in result.stderr, (name, command, piece, result.stderr)
            assert "nothing was changed" in result.stderr, (name, command)
            assert result.stdout == "", (name, command)
        checked = cattc("policy", cn_dir, "check", path, "--json")
        assert checked.exit_code == 1
        report = json.loads(checked.stdout)
        assert report["valid"] is False
        assert any(all(p in issue for p in expected) for issue in report["issues"]), report
        assert snapshot(cn_dir) == before, name


def _default_data_as_narrower() -> str:
    data = _default_data()
    data["rules"] = [r for r in data["rules"] if r["audience"] != "no_mou"]
    return yaml.safe_dump(data, sort_keys=False)


# -- 4. a valid apply --------------------------------------------------------------------
def test_valid_apply_makes_a_version_and_logs_every_live_listing_once(
    cn_dir: Path, tmp_path: Path
) -> None:
    rt = open_runtime(cn_dir)
    try:
        rt.listings.withdraw("cn-off-0001")
        live = {s.id: s.record["version"] for s in rt.listings.iter_all(include_withdrawn=False)}
    finally:
        rt.close()
    assert len(live) == len(sample_records("cn")) - 1 and "cn-off-0001" not in live
    before = snapshot(cn_dir)

    text = _default_data_as_narrower()
    path = tmp_path / "new.yaml"
    path.write_text(text, encoding="utf-8")
    result = cattc("policy", cn_dir, "apply", path, "--author", "alice", "--json")
    assert result.exit_code == 0, result.output
    applied = json.loads(result.stdout)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    assert applied["version"] == 2 and applied["active"] is True
    assert applied["digest"] == digest and applied["author"] == "alice"
    assert "text" not in applied

    after = snapshot(cn_dir)
    assert after["active"] == (2, digest)
    assert after["history"] == [(1, before["active"][1], False), (2, digest, True)]
    assert after["file"] == text
    entries = changes_after(cn_dir, before["head"])
    assert {kind for _, _, kind in entries} == {"policy"}
    assert sorted((lid, v) for lid, v, _ in entries) == sorted(live.items())
    assert after["head"] == before["head"] + len(live)

    shown = json.loads(cattc("policy", cn_dir, "show", "--json").stdout)
    assert (shown["version"], shown["text"], shown["author"]) == (2, text, "alice")

    # the same text again: no new version, nothing logged
    again = cattc("policy", cn_dir, "apply", path, "--author", "bob", "--json")
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["version"] == 2
    assert json.loads(again.stdout)["author"] == "alice"
    assert snapshot(cn_dir) == after

    text_out = cattc("policy", cn_dir, "apply", path).stdout
    assert text_out.startswith(f"policy version 2 is active (sha256 {digest[:16]})")


# -- 5. explain --------------------------------------------------------------------------
def _pick(predicate: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    now = int(time.time() * 1000)
    for record in sample_records("cn"):
        if day_ms(record["expires"]) > now and predicate(record):
            return record
    raise AssertionError("no such sample record")


def _rule_number(audience: str, category: str) -> int:
    rules = _default_data()["rules"]
    return 1 + next(
        i for i, r in enumerate(rules) if (r["audience"], r["category"]) == (audience, category)
    )


def _verify(view: dict[str, Any], cn_dir: Path) -> None:
    rt = open_runtime(cn_dir)
    try:
        keys = rt.keys.verify_keys()
    finally:
        rt.close()
    assert verify_object(view, "cn", keys) == "ed25519:1"
    tampered = copy.deepcopy(view)
    tampered["listing"]["fields"]["title"]["en"] += "!"
    with pytest.raises(SignatureError):
        verify_object(tampered, "cn", keys)


def test_explain_shared_prints_the_rule_and_the_exact_signed_view(cn_dir: Path) -> None:
    record = _pick(lambda r: r["category"] == "tech_offer" and r["visibility"] == "public")
    number = _rule_number("mou", "tech_offer")
    rule = _default_data()["rules"][number - 1]

    result = cattc("policy", cn_dir, "explain", record["id"], "--audience", "th", "--json")
    assert result.exit_code == 0, result.output
    got = json.loads(result.stdout)
    assert got["shared"] is True and got["code"] == "shared"
    assert (got["rule_index"], got["matched"], got["matched_key"]) == (number, "group", "mou")
    assert got["rule"] == rule and got["policy_version"] == 1
    view = got["view"]
    assert (view["type"], view["issuer"], view["audience"]) == ("listing", "cn", "th")
    assert view["policy"] == {"version": 1}
    listing = view["listing"]
    assert (listing["id"], listing["version"]) == (record["id"], record["version"])
    assert listing["expires"] == day_ms(record["expires"])
    tops = {path.partition(".")[0] for path in rule["fields"]}
    assert set(listing["fields"]) <= tops and "contact" not in listing["fields"]
    assert listing["fields"]["title"]["en"] == record["title"]["en"]
    _verify(view, cn_dir)

    text = cattc("policy", cn_dir, "explain", record["id"], "--audience", "th")
    assert text.exit_code == 0, text.output
    head, marker, signed = text.stdout.partition("exact signed view:\n")
    assert marker, text.stdout
    assert f"rule {number} applies, by group mou" in head
    printed = json.loads(signed)
    _verify(printed, cn_dir)
    drop = ("ts", "signatures")
    assert {k: v for k, v in printed.items() if k not in drop} == {
        k: v for k, v in view.items() if k not in drop
    }


def test_explain_for_the_hub_uses_its_node_rule_and_carries_the_relay(
    tmp_path: Path, database_url: DatabaseUrl
) -> None:
    th_dir = loaded_node(tmp_path, "th", database_url("th"))
    record = next(
        r
        for r in sample_records("th")
        if r["category"] == "tech_request" and r["visibility"] == "network"
    )
    number = _rule_number("cn", "tech_request")
    rule = _default_data()["rules"][number - 1]
    result = cattc("policy", th_dir, "explain", record["id"], "--audience", "cn", "--json")
    assert result.exit_code == 0, result.output
    got = json.loads(result.stdout)
    assert (got["rule_index"], got["matched"], got["matched_key"]) == (number, "node", "cn")
    assert got["view"]["policy"] == {"version": 1, "relay": rule["relay"]}
    rt = open_runtime(th_dir)
    try:
        assert verify_object(got["view"], "th", rt.keys.verify_keys()) == "ed25519:1"
    finally:
        rt.close()


@pytest.mark.parametrize(
    ("case", "audience", "code", "says"),
    [
        ("private", "th", "private", "the listing is private; it never leaves the node"),
        ("bilateral", "outside", "not_in_share_with", "the audience is not in share_with"),
        ("bilateral", "inside", "visibility_not_in_rule", "shares only public, network listings"),
        ("organization", "th", "no_rule", "no rule names this audience"),
        ("expert", "th", "no_rule", "no rule names this audience"),
    ],
)
def test_explain_not_shared_says_why(
    cn_dir: Path, case: str, audience: str, code: str, says: str
) -> None:
    if case == "private":
        record = _pick(lambda r: r["visibility"] == "private")
    elif case == "bilateral":
        record = _pick(lambda r: r["visibility"] == "bilateral" and "th" in r["share_with"])
    else:
        record = _pick(lambda r: r["category"] == case and r["visibility"] == "public")
    if audience == "inside":
        audience = "th"
    elif audience == "outside":
        audience = next(
            n for n in ("la", "kh", "mm", "vn", "bn", "id") if n not in record.get("share_with", [])
        )

    result = cattc("policy", cn_dir, "explain", record["id"], "--audience", audience, "--json")
    assert result.exit_code == 0, result.output
    got = json.loads(result.stdout)
    assert (got["shared"], got["view"], got["code"]) == (False, None, code), got
    assert says in got["reason"]
    if code == "visibility_not_in_rule":
        assert got["rule_index"] == _rule_number("mou", record["category"])
    if code == "no_rule":
        assert got["rule_index"] is None and got["rule"] is None

    text = cattc("policy", cn_dir, "explain", record["id"], "--audience", audience)
    assert text.exit_code == 0, text.output
    assert f"not shared ({code}): " in text.stdout and says in text.stdout
    assert "exact signed view" not in text.stdout


def test_explain_unknown_listing_fails_in_one_line(cn_dir: Path) -> None:
    result = cattc("policy", cn_dir, "explain", "cn-off-9999", "--audience", "th")
    assert result.exit_code == 1
    assert result.stderr == "error: no listing cn-off-9999 on this node\n"
