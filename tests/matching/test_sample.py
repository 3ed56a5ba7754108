"""The matcher on the sample data: synonym pairs found, near misses ranked low, and the
evaluation against BM25 on the sample and on the harder development set (lexical mode)."""

from __future__ import annotations

from pathlib import Path

import pytest

from node.matching import Match, Matcher
from node.matching.evaluate import SetReport, evaluate, load_pairs
from tests.matching.helpers import NOW, sample_views
from tests.paths import DATA, PROJECT_ROOT, require

HARD = PROJECT_ROOT / "bench" / "eval"
# The README's table of pairs whose two sides use different words for the same thing.
SYNONYM_PAIRS = [
    ("th", "th-req-0011", "cn-off-0036"),
    ("cn", "cn-req-0007", "my-off-0007"),
    ("ph", "ph-req-0011", "cn-off-0048"),
    ("th", "th-req-0003", "cn-off-0009"),
    ("th", "th-req-0002", "cn-off-0018"),
    ("ph", "ph-req-0008", "id-off-0004"),
    ("la", "la-req-0003", "cn-off-0010"),
    ("la", "la-req-0010", "cn-off-0055"),
    ("cn", "cn-req-0009", "my-off-0004"),
    ("cn", "cn-req-0011", "my-off-0002"),
    ("mm", "mm-req-0005", "cn-off-0038"),
]
# The README's near misses: same sector, different problem.
NEAR_MISSES = [
    ("kh-req-0006", "cn-off-0082"),
    ("kh-req-0006", "cn-off-0059"),
    ("la-req-0002", "cn-off-0082"),
    ("th-req-0003", "cn-off-0005"),
    ("la-req-0005", "cn-off-0035"),
    ("vn-req-0005", "cn-off-0074"),
    ("cn-req-0005", "vn-off-0001"),
    ("cn-req-0001", "th-off-0005"),
    ("th-req-0005", "my-off-0002"),
    ("kh-req-0003", "cn-off-0002"),
    ("mm-req-0007", "cn-off-0059"),
    ("cn-req-0004", "bn-off-0002"),
    ("id-req-0005", "bn-off-0002"),
    ("vn-req-0010", "cn-off-0024"),
    ("my-req-0005", "cn-off-0056"),
    ("ph-req-0004", "cn-off-0066"),
    ("id-req-0001", "cn-off-0047"),
    ("mm-req-0008", "cn-off-0028"),
    ("bn-req-0001", "cn-off-0070"),
    ("vn-req-0001", "cn-off-0049"),
]


@pytest.fixture(scope="module")
def top() -> dict[str, list[Match]]:
    matcher = Matcher(NOW)
    matcher.upsert_many(sample_views())
    return {ref[1]: ms for ref, ms in matcher.top_matches(10, kinds=("offer",)).items()}


@pytest.mark.parametrize(("owner", "request_id", "offer_id"), SYNONYM_PAIRS)
def test_synonym_pairs_are_in_the_top_10(
    top: dict[str, list[Match]], owner: str, request_id: str, offer_id: str
) -> None:
    ranked = [m.candidate[1] for m in top[request_id]]
    assert offer_id in ranked[:10]
    assert top[request_id][0].request == (owner, request_id)


@pytest.mark.parametrize(("request_id", "offer_id"), NEAR_MISSES)
def test_near_misses_rank_below_the_true_match_or_score_low(
    top: dict[str, list[Match]], request_id: str, offer_id: str
) -> None:
    """Below the request's true match when it has one; otherwise (no intended counterpart)
    its score stays below the median score of the sample's true pairs."""
    pairs = load_pairs(require(DATA / "match_pairs.csv"))
    ranked = [m.candidate[1] for m in top.get(request_id, [])]
    if offer_id not in ranked:
        return  # not proposed at all: excluded, expired, private, or past the top 10
    truth = [o for o in pairs.get(request_id, {}) if o in ranked]
    if truth:
        assert ranked.index(offer_id) > min(ranked.index(o) for o in truth)
        return
    true_scores = sorted(
        m.score for r, ms in top.items() for m in ms if m.candidate[1] in pairs.get(r, {})
    )
    median = true_scores[len(true_scores) // 2]
    assert top[request_id][ranked.index(offer_id)].score < median


def _score(report: SetReport, system: str) -> float:
    return next(r.ndcg for r in report.results if r.system == system)


def test_matcher_does_not_lose_to_bm25_on_the_sample() -> None:
    report = evaluate(require(DATA / "listings.jsonl"), require(DATA / "match_pairs.csv"))
    assert _score(report, "lexical") >= _score(report, "bm25") - 0.01
    assert next(r.violations for r in report.results if r.system == "lexical") == 0


def test_matcher_clearly_beats_bm25_on_the_hard_set() -> None:
    listings = require(HARD / "hard_listings.jsonl")
    report = evaluate(listings, require(HARD / "hard_pairs.csv"))
    assert report.requests >= 30
    assert _score(report, "lexical") > _score(report, "bm25") + 0.1
    assert next(r.violations for r in report.results if r.system == "lexical") == 0
    assert next(r.violations for r in report.results if r.system == "bm25") > 0


def test_hard_set_listings_are_valid_and_pairs_pass_the_hard_constraints() -> None:
    from node.matching.evaluate import load_records, violates
    from protocol.listing import parse_listing

    records = load_records(require(HARD / "hard_listings.jsonl"))
    for record in records.values():
        parse_listing(record)
    pairs = load_pairs(require(HARD / "hard_pairs.csv"))
    for request_id, offers in pairs.items():
        assert not records[request_id].get("ipc") or request_id
        for offer_id in offers:
            assert not violates(records[request_id], records[offer_id], NOW)
    assert sum(1 for r in pairs if not records[r].get("ipc")) >= 20


def test_evaluate_rejects_pairs_naming_unknown_listings(tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("request_id,offer_id,relevance\nxx-req-0001,cn-off-0001,2\n")
    with pytest.raises(ValueError, match="xx-req-0001"):
        evaluate(require(DATA / "listings.jsonl"), pairs)


def test_an_extra_set_may_reuse_the_first_sets_listings_by_id(tmp_path: Path) -> None:
    import json

    from node.matching.evaluate import load_records

    hard = require(HARD / "hard_listings.jsonl").read_text(encoding="utf-8").splitlines()
    line = next(x for x in hard if '"th-req-0101"' in x)
    listings = tmp_path / "one.jsonl"
    listings.write_text(line + "\n", encoding="utf-8")
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("request_id,offer_id,relevance\nth-req-0101,cn-off-0018,2\n")
    with pytest.raises(ValueError, match="cn-off-0018"):
        evaluate(listings, pairs)
    base = load_records(require(DATA / "listings.jsonl"))
    report = evaluate(listings, pairs, base=base)
    assert report.requests == 1 and report.offers >= 100
    assert json.loads(json.dumps(report.to_json()))["results"][0]["ndcg@10"] == 1.0


SPLIT_SETS = ("dev_problem", "dev_local", "test_problem", "test_local")
LOCAL_LANGUAGES = {"vi", "th", "id", "fil", "ms", "lo", "km", "my", "zh"}


def test_the_dev_and_test_sets_are_valid_and_their_pairs_pass_the_hard_constraints() -> None:
    from node.matching.evaluate import load_records, violates
    from protocol.listing import parse_listing

    base = load_records(require(DATA / "listings.jsonl"))
    problem = local = 0
    seen: set[str] = set()
    for name in SPLIT_SETS:
        records = load_records(require(HARD / f"{name}.jsonl"))
        pairs = load_pairs(require(HARD / f"{name}_pairs.csv"))
        both = {**base, **records}
        for record in records.values():
            if "en" in record["title"]:
                parse_listing(record)
            else:  # the protocol asks for an English title; these stand for a member's own
                parse_listing({**record, "title": {"en": "-", **record["title"]}})
        for request_id, offers in pairs.items():
            assert request_id not in seen  # a request belongs to one split only
            seen.add(request_id)
            request = records[request_id]
            assert not request.get("ipc") and not request.get("isic")
            if name.endswith("_local"):
                local += 1
                assert set(request["title"]) <= LOCAL_LANGUAGES, request_id  # no English
            else:
                problem += 1
            for offer_id in offers:
                assert not violates(request, both[offer_id], NOW), (request_id, offer_id)
    hard = load_pairs(require(HARD / "hard_pairs.csv"))
    assert problem + len(hard) >= 150 and local >= 100
