"""Every match explains itself: components, shared terms, concepts and codes."""

from __future__ import annotations

from node.matching import Matcher
from tests.matching.helpers import NOW, offer, request


def test_explanation_names_components_terms_concepts_and_codes() -> None:
    m = Matcher(NOW)
    m.upsert(
        "cn",
        offer(
            "o1",
            "Battery-swapping network for electric tricycles",
            "Swap cabinets with LFP packs; a swap takes 30 seconds.",
            keywords=["battery swapping", "e-mobility"],
            ipc=["B60L", "H01M"],
            isic=["27", "49"],
            target_countries=["ph"],
        ),
    )
    m.upsert(
        "ph",
        request(
            "r1",
            "Battery exchange stations for electric tricycle drivers",
            keywords=["electric tricycle", "battery exchange"],
            ipc=["B60L"],
            isic=["49"],
            trl_min=8,
            partnership=["commercial_with_tech_assistance"],
        ),
    )
    match = m.matches_for("ph", "r1")[0]
    assert "tricycle" in " ".join(match.shared_terms)
    assert "electric mobility" in match.shared_concepts
    assert match.shared_codes == ("IPC B60L", "ISIC 49")
    text = match.explanation()
    for part in (
        "score",
        "relevance",
        "fit",
        "trl 1.00",
        "target 1.00",
        "shared terms",
        "shared concepts",
        "IPC B60L",
        "ph/r1",
        "cn/o1",
    ):
        assert part in text
    data = match.to_json()
    assert data["score"] == match.score and data["kind"] == "offer"


def test_class_level_ipc_is_reported_as_such() -> None:
    m = Matcher(NOW)
    m.upsert("cn", offer("o1", "Rice breeding", ipc=["A01H"]))
    m.upsert("la", request("r1", "Rice breeding", ipc=["A01G"]))
    assert m.matches_for("la", "r1")[0].shared_codes == ("IPC A01 (class)",)
