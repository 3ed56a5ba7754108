"""Codes inferred from the text of requests that name none (``node.matching.infer``): a
soft, named score component that every route computes alike and explanations show."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from node.matching import Matcher
from node.matching import infer as infer_module
from node.matching import matcher as matcher_module
from node.matching.bulk import pair_sims
from node.matching.cli import eval_cmd
from node.matching.features import SECTORS
from node.matching.infer import CodeModel
from node.matching.scoring import RELEVANCE_WEIGHTS, grid_scores, score_pairs
from node.matching.semantic import CachedEncoder
from tests.matching.helpers import NOW, offer, request, sample_views
from tests.paths import DATA, PROJECT_ROOT, require

EVAL = PROJECT_ROOT / "bench" / "eval"

CODE_FIELDS = ("sector", "sectors", "ipc", "isic")


def _uncoded(views: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    """The sample with every request's sector and codes left out."""
    out = []
    for owner, view in views:
        if view["category"] == "tech_request":
            fields = {k: v for k, v in view["fields"].items() if k not in CODE_FIELDS}
            out.append((owner, {**view, "fields": fields}))
        else:
            out.append((owner, view))
    return out


def _farm() -> Matcher:
    m = Matcher(NOW)
    m.upsert_many(
        [
            ("cn", offer("o1", "Rice seed drill", "Seeding rice paddies", sector="agrifood")),
            ("cn", offer("o2", "Rice straw baler", "Baling rice straw", sector="agrifood")),
            ("cn", offer("o3", "Solar inverter", "Grid inverter for solar", sector="new_energy")),
            ("cn", offer("o4", "Rice husk gasifier power", "Power", sector="new_energy")),
            ("la", request("r1", "Planting rice paddies by hand is slow")),
            ("la", request("r2", "Rice paddies", sector="new_energy")),
        ]
    )
    return m


def test_a_request_without_sector_gets_one_inferred_and_explained() -> None:
    m = _farm()
    got = m.matches_for("la", "r1")
    assert got and got[0].candidate == ("cn", "o1")
    top = got[0]
    assert 0.5 < top.components["inferred_sector"] <= 1.0
    assert top.inferred_codes and top.inferred_codes[0].startswith("sector agrifood (")
    assert "inferred from the request's text: sector agrifood" in top.explanation()
    energy = next(x for x in got if x.candidate == ("cn", "o4"))
    assert energy.components["inferred_sector"] < top.components["inferred_sector"]
    # A request that names its sector keeps it: nothing is inferred for it.
    for match in m.matches_for("la", "r2"):
        assert "inferred_sector" not in match.components and not match.inferred_codes
        assert "sector" in match.components


def test_inferred_sector_lifts_the_candidates_of_that_sector() -> None:
    m = _farm()
    with_inference = {x.candidate: x.score for x in m.matches_for("la", "r1")}
    requests = m.stores["request"]
    slots = requests.live_slots()
    nothing = np.zeros((len(slots), 3), dtype=np.int64)
    requests.set_inferred(slots, {"sector": (nothing, nothing.astype(np.float32))})
    without = {x.candidate: x.score for x in m.matches_for_many([("la", "r1")])[("la", "r1")]}
    assert without  # the model was not refitted: no candidate changed
    assert with_inference[("cn", "o1")] > without[("cn", "o1")]
    assert with_inference[("cn", "o4")] < without[("cn", "o4")]


def test_text_sharing_nothing_infers_nothing() -> None:
    m = _farm()
    m.upsert("la", request("r3", "Xyzzy qwerty"))
    m.matches_for("la", "r3")
    slot = m.stores["request"].slot_of[("la", "r3")]
    assert not m.stores["request"].has_inferred("sector")[slot]


def test_a_request_added_after_the_fit_is_inferred_on_arrival() -> None:
    m = _farm()
    m.matches_for("la", "r1")
    model = m.code_model()
    m.upsert("la", request("r4", "Rice seed drill for small paddies"))
    slot = m.stores["request"].slot_of[("la", "r4")]
    assert m.stores["request"].has_inferred("sector")[slot]
    assert m.code_model() is model
    assert m.matches_for("la", "r4")[0].components["inferred_sector"] > 0.5


def test_the_model_is_refitted_when_enough_candidates_change() -> None:
    m = _farm()
    first = m.code_model()
    assert m.code_model() is first and first.size == 4
    m.upsert("cn", offer("o6", "Fish feed pellets", sector="marine"))
    second = m.code_model()
    assert second is not first and second.size == 5
    assert 1 + len(SECTORS) > len(second.fitted["sector"].codes) == 3
    m.remove("cn", "o6")
    assert m.code_model().size == 4
    m.compact()
    assert m.code_model() is not first


def test_the_model_learns_from_candidates_only() -> None:
    m = Matcher(NOW)
    m.upsert("la", request("r1", "Rice paddies", sector="agrifood"))
    model = m.code_model()
    assert model.fitted == {}
    assert m.matches_for("la", "r1") == []


@pytest.mark.parametrize(
    ("pairs_per_block", "all_kinds"), [(500, False), (1_000_000, False), (500, True)]
)
def test_every_route_gives_the_same_scores_with_inferred_codes(
    monkeypatch: pytest.MonkeyPatch, pairs_per_block: int, all_kinds: bool
) -> None:
    monkeypatch.setattr(matcher_module, "MANY_PAIRS", pairs_per_block)
    if all_kinds:  # IPC classes and ISIC divisions too (their weight is 0 by default)
        monkeypatch.setitem(RELEVANCE_WEIGHTS, "inferred_ipc", 0.05)
        monkeypatch.setitem(RELEVANCE_WEIGHTS, "inferred_isic", 0.05)
    m = Matcher(NOW)
    m.upsert_many(_uncoded(sample_views()))
    refs = list(m.stores["request"].slot_of)
    together = m.matches_for_many(refs)
    found = [x for ms in together.values() for x in ms]
    assert any("inferred_sector" in x.components for x in found)
    if all_kinds:
        for name in ("ipc", "isic"):
            assert any(f"inferred_{name}" in x.components for x in found)
        explained = " ".join(x.explanation() for x in found)
        assert "IPC class " in explained and "ISIC " in explained
    else:
        assert not any("inferred_ipc" in x.components for x in found)
    top = m.top_matches(10)
    for ref in refs:
        assert [x.score for x in together[ref]] == [x.score for x in top.get(ref, [])], ref
    for ref in refs[:10]:
        assert m.matches_for(*ref) == together[ref]
    # The grid (block route) against score_pairs (pair route), pair by pair.
    rs, cs = m.stores["request"], m.stores["offer"]
    r_slots, c_slots = rs.live_slots(), cs.live_slots()
    ri, ci = np.repeat(r_slots, len(c_slots)), np.tile(c_slots, len(r_slots))
    sims, _ = pair_sims(rs, ri, cs, ci)
    scored = score_pairs(rs, ri, cs, ci, sims, NOW)
    assert scored.components["inferred_sector"][1].any()
    expect = np.where(scored.allowed, scored.score, -np.inf).reshape(len(r_slots), -1)
    shaped = {space: v.reshape(len(r_slots), -1) for space, v in sims.items()}
    grid = grid_scores(rs, r_slots, cs, c_slots, shaped, None, NOW)
    assert (np.isinf(grid) == np.isinf(expect)).all()
    finite = np.isfinite(expect)
    assert np.allclose(grid[finite], expect[finite], atol=1e-5)


def test_hard_constraints_hold_whatever_is_inferred() -> None:
    m = _farm()
    m.upsert("cn", offer("o5", "Rice seed drill prototype", sector="agrifood", trl=3))
    m.upsert("la", request("r5", "Rice seed drill", trl_min=7))
    got = m.matches_for("la", "r5")
    assert got and ("cn", "o5") not in {x.candidate for x in got}


def test_with_embeddings_the_model_uses_them(e5_static: CachedEncoder) -> None:
    m = Matcher(NOW, encoder=e5_static)
    m.upsert_many(_uncoded(sample_views()))
    model = m.code_model()
    fitted = model.fitted["sector"]
    assert fitted.dense is not None and fitted.dense.shape[0] == len(fitted.codes)
    rs = m.stores["request"]
    inferred = model.infer(rs, rs.live_slots())
    codes, probs = inferred["sector"]
    assert (probs[:, 0] > 0).all() and np.allclose(probs.sum(axis=1) <= 1.0 + 1e-6, True)
    assert isinstance(model, CodeModel)


def test_eval_without_sector_runs_the_matcher_on_requests_without_it() -> None:
    local = [str(require(EVAL / "dev_local.jsonl")), str(require(EVAL / "dev_local_pairs.csv"))]
    base = ["--base", str(require(DATA / "listings.jsonl")), "--semantic", "none", "--json"]
    runner = CliRunner()
    with_sector = runner.invoke(eval_cmd, [*local, *base])
    without = runner.invoke(eval_cmd, [*local, *base, "--without", "sector"])
    assert with_sector.exit_code == 0 and without.exit_code == 0, without.output
    ndcg = [
        {r["system"]: r["ndcg@10"] for r in json.loads(out.output)[0]["results"]}
        for out in (with_sector, without)
    ]
    # The sector the set gives each request is that of its labelled offer: inferring it
    # from a request's own words does worse, but the matcher still beats BM25 by far.
    assert ndcg[1]["lexical"] < ndcg[0]["lexical"]
    assert ndcg[1]["lexical"] > 2 * ndcg[1]["bm25"]
    bad = runner.invoke(eval_cmd, [*local, *base, "--without", "title"])
    assert bad.exit_code != 0 and "title" in bad.output


def test_centroids_summed_in_blocks_are_those_of_all_candidates_at_once(
    monkeypatch: pytest.MonkeyPatch, e5_static: CachedEncoder
) -> None:
    """The model fits ``FIT_ROWS`` candidates at a time (bounded memory at a million
    listings): blocks of 7 give the centroids, sparse and dense, of one block of all."""
    m = Matcher(NOW, encoder=e5_static)
    m.upsert_many(_uncoded(sample_views()))
    stores = [m.stores["offer"], m.stores["expert"]]
    kinds = ("sector", "ipc", "isic")
    assert len(stores[0].live_slots()) > 7
    whole = CodeModel(stores, kinds)
    monkeypatch.setattr(infer_module, "FIT_ROWS", 7)
    blocks = CodeModel(stores, kinds)
    assert set(blocks.fitted) == set(whole.fitted) == set(kinds)
    for kind, fitted in whole.fitted.items():
        other = blocks.fitted[kind]
        assert np.array_equal(fitted.codes, other.codes)
        for space, centroids in fitted.sparse.items():
            assert abs(centroids - other.sparse[space]).max() < 1e-6
        assert fitted.dense is not None and other.dense is not None
        assert np.allclose(fitted.dense, other.dense, atol=1e-6)
