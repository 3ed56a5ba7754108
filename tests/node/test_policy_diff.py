"""``cattc policy DATA_DIR diff FILE`` on the sample data, checked against an independent count.

The expected numbers come from plain Python over the raw JSONL and the raw YAML (loaded
with ``yaml.safe_load``, never with ``parse_policy``): visibility, ``share_with``, expiry
against the real clock, and the rule lookup of DESIGN 7 (node id, then the first group rule
in file order, then ``*``; deny by default). So a bug in the evaluator or the diff cannot
hide in its own oracle.
"""

from __future__ import annotations

import calendar
import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from node.cli.main import cli
from node.config import POLICY_FILE
from node.runtime import open_runtime
from tests.node.sample import sample_records
from tests.nodes import make_node_dir

GROUPS = {"mou": ["cn", "th", "la", "kh", "mm", "vn", "bn", "id"], "no_mou": ["my", "ph"]}
ALL = ["public", "network", "bilateral"]


def _rule(audience: str, category: str, visibility: list[str], fields: list[str]) -> Any:
    return {"audience": audience, "category": category, "visibility": visibility, "fields": fields}


NARROW_FROM_DEFAULT: dict[str, Any] = {
    "groups": GROUPS,
    "rules": [
        # the hub keeps public offers only; its request rule is gone, so the mou rule
        # (the same visibility) applies to it instead; its expert rule is gone
        _rule("cn", "tech_offer", ["public"], ["title", "summary", "keywords"]),
        _rule("mou", "tech_offer", ["public"], ["title", "summary", "keywords", "trl"]),
        _rule("mou", "tech_request", ["public", "network"], ["title", "need"]),
        _rule("no_mou", "tech_request", ["public"], ["title"]),
    ],
}

WIDE: dict[str, Any] = {
    "groups": GROUPS,
    "rules": [
        _rule("*", "organization", ["public"], ["title", "summary"]),
        _rule("*", "event", ["public", "network"], ["title"]),
        _rule("mou", "tech_offer", ALL, ["title", "summary", "trl"]),
        _rule("mou", "tech_request", ALL, ["title", "need"]),
        _rule("no_mou", "tech_offer", ["public", "bilateral"], ["title"]),
        _rule("th", "expert", ALL, ["title"]),
        _rule("cn", "expert", ["public", "network"], ["title"]),
    ],
}

NARROW_FROM_WIDE: dict[str, Any] = {
    "groups": GROUPS,
    "rules": [
        _rule("*", "event", ["public"], ["title"]),
        _rule("mou", "tech_offer", ["public", "network"], ["title", "summary", "trl"]),
        _rule("th", "tech_offer", ["public"], ["title"]),  # th: more specific than mou
        _rule("mou", "tech_request", ALL, ["title", "need"]),
        _rule("no_mou", "tech_offer", ["public"], ["title"]),
        _rule("th", "expert", ALL, ["title"]),
    ],
}


# -- the independent oracle --------------------------------------------------------------
def day_ms(day: str) -> int:
    """``YYYY-MM-DD`` -> ms at 00:00 UTC (the sample data's import convention)."""
    year, month, dom = (int(part) for part in day.split("-"))
    return calendar.timegm((year, month, dom, 0, 0, 0)) * 1000


def rule_for(policy: dict[str, Any], node: str, category: str) -> dict[str, Any] | None:
    rules: list[dict[str, Any]] = [
        r for r in policy.get("rules") or [] if r["category"] == category
    ]
    groups = policy.get("groups") or {}
    for rule in rules:
        if rule["audience"] == node:
            return rule
    for rule in rules:  # file order
        if node in groups.get(rule["audience"], ()):
            return rule
    for rule in rules:
        if rule["audience"] == "*":
            return rule
    return None


def visible_ids(
    records: list[dict[str, Any]], node: str, policy: dict[str, Any], now_ms: int
) -> set[str]:
    out: set[str] = set()
    for record in records:
        visibility = record["visibility"]
        if visibility == "private" or day_ms(record["expires"]) <= now_ms:
            continue
        if visibility == "bilateral" and node not in record.get("share_with", []):
            continue
        rule = rule_for(policy, node, record["category"])
        if rule is not None and visibility in rule["visibility"]:
            out.add(record["id"])
    return out


# -- helpers -----------------------------------------------------------------------------
def loaded_node(tmp_path: Path, owner: str, url: str) -> Path:
    data_dir, _, _ = make_node_dir(tmp_path, owner, url)
    rt = open_runtime(data_dir)
    try:
        report = rt.listings.import_records(enumerate(sample_records(owner), start=1))
    finally:
        rt.close()
    assert report.rejected == 0 and report.created == len(sample_records(owner))
    return data_dir


def write_policy(path: Path, policy: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(policy, sort_keys=False), encoding="utf-8")
    return path


def table_rows(text: str) -> dict[str, list[str]]:
    lines = text.splitlines()
    assert lines[0].split()[:4] == ["audience", "visible", "+listings", "-listings"]
    assert set(lines[1]) <= {"-", " "}
    return {line.split()[0]: line.split() for line in lines[2:] if line.strip()}


@pytest.mark.parametrize("owner", ["cn", "th"])
@pytest.mark.parametrize("scenario", ["default_to_narrow", "wide_to_narrow"])
def test_diff_counts_what_disappears_per_audience(
    tmp_path: Path, database_url: Any, owner: str, scenario: str
) -> None:
    data_dir = loaded_node(tmp_path, owner, database_url(owner))
    runner = CliRunner()
    if scenario == "wide_to_narrow":
        wide = write_policy(tmp_path / "wide.yaml", WIDE)
        applied = runner.invoke(cli, ["policy", str(data_dir), "apply", str(wide)])
        assert applied.exit_code == 0, applied.output
        new = NARROW_FROM_WIDE
    else:
        new = NARROW_FROM_DEFAULT
    old = yaml.safe_load((data_dir / POLICY_FILE).read_text(encoding="utf-8"))
    narrow = write_policy(tmp_path / "narrow.yaml", new)
    records = sample_records(owner)
    audiences = sorted({n for members in GROUPS.values() for n in members} - {owner})

    now_ms = int(time.time() * 1000)
    as_json = runner.invoke(cli, ["policy", str(data_dir), "diff", str(narrow), "--json"])
    as_text = runner.invoke(cli, ["policy", str(data_dir), "diff", str(narrow)])
    assert as_json.exit_code == 0, as_json.output
    assert as_text.exit_code == 0, as_text.output
    diffs = json.loads(as_json.stdout)
    rows = table_rows(as_text.stdout)
    assert sorted(diffs) == audiences
    assert sorted(rows) == audiences

    lost_somewhere = {"mou": 0, "no_mou": 0}
    for node in audiences:
        before = visible_ids(records, node, old, now_ms)
        after = visible_ids(records, node, new, now_ms)
        gone, came = sorted(before - after), sorted(after - before)
        got = diffs[node]
        assert got["becoming_invisible"] == gone, node
        assert got["becoming_visible"] == came, node
        assert (got["visible_before"], got["visible_after"]) == (len(before), len(after)), node
        assert rows[node][1:6] == [str(len(before)), "->", str(len(after)), f"+{len(came)}"] + [
            f"-{len(gone)}"
        ], (node, rows[node])
        lost_somewhere["mou" if node in GROUPS["mou"] else "no_mou"] += len(gone)
    # the scenario really narrows for both kinds of audience (the test is not vacuous)
    assert lost_somewhere["mou"] > 0 and lost_somewhere["no_mou"] > 0, lost_somewhere
    # a dry run changes nothing
    rt = open_runtime(data_dir)
    try:
        assert rt.policy.active().version == (2 if scenario == "wide_to_narrow" else 1)
    finally:
        rt.close()
