"""Each score component and each hard constraint, on small hand-made listings."""

from __future__ import annotations

from node.matching import Matcher
from tests.matching.helpers import DAY, NOW, offer, request

SHRIMP = "Probiotic starter keeps shrimp pond water quality stable"
NEED = "Shrimp die in our ponds after rain; we need stable pond water quality"


def _matcher(*views: tuple[str, dict[str, object]]) -> Matcher:
    matcher = Matcher(NOW)
    for owner, v in views:
        assert matcher.upsert(owner, v)
    return matcher


def _only(matcher: Matcher, owner: str, rid: str) -> dict[str, float]:
    matches = matcher.matches_for(owner, rid)
    assert len(matches) == 1
    return matches[0].components


def test_score_is_in_unit_interval_with_named_components() -> None:
    m = _matcher(
        ("cn", offer("o1", SHRIMP, ipc=["A01K"], isic=["03"])),
        ("vn", request("r1", NEED, ipc=["A01K"], isic=["03"])),
    )
    match = m.matches_for("vn", "r1")[0]
    assert 0.0 <= match.score <= 1.0
    assert {"text", "concepts", "ngrams", "ipc", "isic", "relevance", "fit"} <= set(
        match.components
    )


def test_text_relevance_orders_candidates() -> None:
    m = _matcher(
        ("cn", offer("o1", SHRIMP)),
        ("cn", offer("o2", "Asphalt for rural roads")),
        ("vn", request("r1", NEED)),
    )
    ranked = [x.candidate[1] for x in m.matches_for("vn", "r1")]
    assert ranked[0] == "o1"


def test_ipc_levels_rank_subclass_over_class_over_section() -> None:
    m = _matcher(
        ("cn", offer("sub", "Device", ipc=["A01K"])),
        ("cn", offer("cls", "Device", ipc=["A01G"])),
        ("cn", offer("sec", "Device", ipc=["A23L"])),
        ("vn", request("r1", "Device", ipc=["A01K"])),
    )
    ipc = {x.candidate[1]: x.components["ipc"] for x in m.matches_for("vn", "r1")}
    assert ipc["sub"] > ipc["cls"] > ipc["sec"] > 0


def test_isic_and_sector_components() -> None:
    m = _matcher(
        ("cn", offer("o1", "Dryer", isic=["10"], sector="agrifood")),
        ("cn", offer("o2", "Dryer", isic=["62"], sector="ict_digital")),
        ("vn", request("r1", "Dryer", isic=["1079"], sector="agrifood")),
    )
    comps = {x.candidate[1]: x.components for x in m.matches_for("vn", "r1")}
    assert comps["o1"]["isic"] == 1.0 and comps["o2"]["isic"] == 0.0
    assert comps["o1"]["sector"] == 1.0 and comps["o2"]["sector"] == 0.0


def test_target_country_fit_uses_the_requests_owner() -> None:
    m = _matcher(
        ("cn", offer("yes", SHRIMP, target_countries=["vn", "th"])),
        ("cn", offer("no", SHRIMP, target_countries=["th"])),
        ("vn", request("r1", NEED)),
    )
    comps = {x.candidate[1]: x.components for x in m.matches_for("vn", "r1")}
    assert comps["yes"]["target"] == 1.0 and comps["no"]["target"] == 0.0
    scores = {x.candidate[1]: x.score for x in m.matches_for("vn", "r1")}
    assert scores["yes"] > scores["no"]


def test_trl_and_partnership_fit() -> None:
    m = _matcher(
        ("cn", offer("o1", SHRIMP, trl=8, partnership=["licensing", "investment"])),
        ("vn", request("r1", NEED, trl_min=7, partnership=["licensing", "joint_venture"])),
    )
    comps = _only(m, "vn", "r1")
    assert comps["trl"] == 1.0
    assert comps["partnership"] == 0.5


def test_hard_constraint_trl_below_minimum_excludes() -> None:
    m = _matcher(("cn", offer("o1", SHRIMP, trl=4)), ("vn", request("r1", NEED, trl_min=7)))
    assert m.matches_for("vn", "r1") == []
    assert m.top_matches() == {}


def test_hard_constraint_no_common_partnership_excludes() -> None:
    m = _matcher(
        ("cn", offer("o1", SHRIMP, partnership=["investment"])),
        ("vn", request("r1", NEED, partnership=["licensing"])),
    )
    assert m.matches_for("vn", "r1") == []


def test_expired_listings_are_excluded_at_now() -> None:
    m = _matcher(
        ("cn", offer("old", SHRIMP, expires=NOW)),
        ("cn", offer("new", SHRIMP, expires=NOW + DAY)),
        ("vn", request("r1", NEED)),
        ("vn", request("r2", NEED, expires=NOW - DAY)),
    )
    assert [x.candidate[1] for x in m.matches_for("vn", "r1")] == ["new"]
    assert m.matches_for("vn", "r2") == []
    assert set(m.top_matches()) == {("vn", "r1")}


def test_now_none_uses_the_wall_clock() -> None:
    m = Matcher()
    m.upsert("cn", offer("o1", SHRIMP, expires=NOW))  # long past
    m.upsert("vn", request("r1", NEED, expires=2**62))
    assert m.matches_for("vn", "r1") == []


def test_missing_fields_degrade_gracefully() -> None:
    bare = {
        "id": "o1",
        "category": "tech_offer",
        "version": 1,
        "expires": NOW + DAY,
        "fields": {"title": {"en": SHRIMP}},
    }
    broken = {
        "id": "o2",
        "category": "tech_offer",
        "fields": {"title": 5, "trl": "nine", "ipc": "A01K", "partnership": None},
    }
    m = Matcher(NOW)
    assert m.upsert("cn", bare) and m.upsert("cn", broken)
    m.upsert("vn", request("r1", NEED))
    matches = m.matches_for("vn", "r1")
    assert matches[0].candidate == ("cn", "o1")
    assert "trl" not in matches[0].components and "ipc" not in matches[0].components


def test_other_categories_are_not_matched() -> None:
    m = Matcher(NOW)
    assert not m.upsert("cn", {"id": "e1", "category": "event", "fields": {}})
    assert len(m) == 0


def test_a_foreign_language_request_meets_an_english_offer_through_english_fields() -> None:
    m = _matcher(
        ("cn", offer("o1", "Solar street lights with LoRa control", ipc=["F21S"])),
        ("cn", offer("o2", "Rice transplanter", ipc=["A01C"])),
        ("th", request("r1", "Solar street lights for village roads", ipc=["F21S"])),
    )
    m.upsert(
        "th",
        {
            **request("r2", "x"),
            "fields": {
                "title": {"th": "ไฟถนนพลังงานแสงอาทิตย์", "en": "Solar street lights"},
                "need": "ไฟถนนสำหรับหมู่บ้าน",
                "keywords": ["street lighting"],
                "ipc": ["F21S"],
            },
        },
    )
    assert m.matches_for("th", "r2")[0].candidate == ("cn", "o1")
    assert m.matches_for("th", "r1")[0].candidate == ("cn", "o1")


def test_experts_are_matched_with_requests() -> None:
    expert = {
        "id": "x1",
        "category": "expert",
        "version": 1,
        "expires": NOW + DAY,
        "fields": {
            "title": {"en": "Dr. A - shrimp pond water quality"},
            "fields": ["shrimp farming", "pond water quality"],
            "sectors": ["agrifood"],
        },
    }
    m = _matcher(("cn", expert), ("vn", request("r1", NEED, sector="agrifood")))
    match = m.matches_for("vn", "r1")[0]
    assert match.kind == "expert" and match.candidate == ("cn", "x1")
    assert m.matches_for("vn", "r1", kinds=("offer",)) == []
    assert m.matches_for("cn", "x1")[0].request == ("vn", "r1")
