"""The hub's default model: multilingual, offline, stored compactly, explained, and a
lexical fallback that says why."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from node.matching import Matcher
from node.matching.concepts import ConceptLexicon
from node.matching.features import extract, listing_text
from node.matching.model_choice import DEFAULT_MODEL
from node.matching.semantic import (
    CachedEncoder,
    EncoderUnavailable,
    load_default,
    load_encoder,
)
from tests.matching.helpers import NOW, offer, request

OFFERS = [
    (
        "o-hydro",
        "Plug-and-play micro-hydro turbine-generator sets for villages",
        "Turbine and generator units of 5-100 kW for off-grid communities beside a stream.",
    ),
    (
        "o-dryer",
        "Solar tunnel dryer for cassava chips and chilli",
        "A tunnel covered in plastic film with a biomass backup heater dries crops in two days.",
    ),
    (
        "o-fluoride",
        "Activated-alumina fluoride removal units for rural water supply",
        "Removes fluoride from well water that causes stained teeth.",
    ),
]
# A Lao village: "Well water gives our children's teeth brown spots." / "We want water
# filtering equipment for the village."
LAO_TITLE = "ນ້ຳບາດານເຮັດໃຫ້ແຂ້ວຂອງເດັກນ້ອຍມີຈຸດສີນ້ຳຕານ"
LAO_NEED = "ຢາກໄດ້ອຸປະກອນກັ່ນຕອງນ້ຳສຳລັບບ້ານ"


def _lao_request() -> dict[str, Any]:
    out = request("r-lao", LAO_TITLE, LAO_NEED, summary=LAO_TITLE, trl_min=None)
    out["fields"]["title"] = {"lo": LAO_TITLE}
    return out


def _matcher(encoder: Any) -> Matcher:
    m = Matcher(NOW, encoder=encoder)
    m.upsert_many([("cn", offer(i, t, s)) for i, t, s in OFFERS] + [("la", _lao_request())])
    return m


def test_a_lao_request_finds_the_english_offer_that_solves_it(e5: CachedEncoder) -> None:
    best = _matcher(e5).matches_for("la", "r-lao", k=3)[0]
    assert best.candidate == ("cn", "o-fluoride")
    assert best.components["semantic"] > 0
    assert best.shared_terms == ()  # no word in common: the model found it


class _Counted:
    """The model, with a record of what it was asked to encode."""

    def __init__(self, inner: CachedEncoder) -> None:
        self.inner = inner
        self.name, self.asymmetric, self.scale = inner.name, inner.asymmetric, inner.scale
        self.texts: list[str] = []

    def encode(self, texts: list[str], *, query: bool = True) -> Any:
        self.texts.extend(texts)
        return self.inner.encode(texts, query=query)


def test_matches_found_for_the_notices_encode_no_sentence(e5: CachedEncoder) -> None:
    """The notices' path (``explain=False``) does not tell the semantic evidence, so it
    must not pay for it: encoding a listing's sentences costs e5 ~20 ms each."""
    counted = _Counted(e5)
    m = _matcher(counted)
    assert counted.texts, "the listings were encoded on arrival"
    counted.texts.clear()
    ref = ("la", "r-lao")
    bare = m.matches_for_many([ref], k=3, explain=False)[ref]
    assert counted.texts == []
    assert all(x.semantic_evidence is None for x in bare)
    full = m.matches_for_many([ref], k=3)[ref]
    assert counted.texts, "the explained matches quote a sentence"
    assert full[0].semantic_evidence is not None
    assert [(x.candidate, x.score, x.components) for x in bare] == [
        (x.candidate, x.score, x.components) for x in full
    ]


# A Chinese village: "Well water gives the children's teeth yellow-brown spots." / "We need
# water purifying equipment for the whole village."
ZH_TITLE = "井水让孩子们的牙齿长出黄褐色斑点"
ZH_NEED = "我们需要全村用的净水设备"


def _bilingual(listing_id: str, title: str, summary: str, chinese: str) -> dict[str, Any]:
    out = offer(listing_id, title, summary)
    out["fields"]["title"] = {"en": title, "zh": chinese}
    return out


def test_a_title_is_encoded_in_one_language_and_indexed_in_all() -> None:
    view = _bilingual("o-dryer", OFFERS[1][1], OFFERS[1][2], "木薯片和辣椒太阳能隧道干燥机")
    text = listing_text(view)
    assert text is not None and OFFERS[1][1] in text and "干燥机" not in text
    feats = extract("cn", view, ConceptLexicon({}))
    assert feats is not None and feats.text == text
    assert any("干燥" in term for term in feats.words)  # the lexical side reads every title
    local = request("r-zh", ZH_TITLE, ZH_NEED, summary=ZH_TITLE)
    local["fields"]["title"] = {"zh": ZH_TITLE}
    assert ZH_TITLE in (listing_text(local) or "")


def test_a_chinese_request_is_not_drawn_to_offers_for_their_chinese_titles(
    e5: CachedEncoder,
) -> None:
    """Unrelated offers with a Chinese translation of their title must not tie with the one
    that solves the problem, whose title is in English only."""
    offers = [
        offer(*OFFERS[2]),
        _bilingual(*OFFERS[0], "村级即插即用微型水电机组"),
        _bilingual(*OFFERS[1], "木薯片和辣椒太阳能隧道干燥机"),
    ]
    local = request("r-zh", ZH_TITLE, ZH_NEED, summary=ZH_TITLE, trl_min=None)
    local["fields"]["title"] = {"zh": ZH_TITLE}
    m = Matcher(NOW, encoder=e5)
    m.upsert_many([("cn", o) for o in offers] + [("cn2", local)])
    best, *others = m.matches_for("cn2", "r-zh", k=3)
    assert best.candidate == ("cn", "o-fluoride")
    assert all(best.components["semantic"] > 1.5 * o.components["semantic"] for o in others)


def test_without_the_model_the_lao_request_finds_nothing_relevant() -> None:
    matches = _matcher(None).matches_for("la", "r-lao", k=3)
    assert all(m.score == 0.0 for m in matches)  # nothing shared, nothing to rank by


def test_semantic_evidence_quotes_the_nearest_sentence_of_the_side_asked_about(
    e5: CachedEncoder,
) -> None:
    best = _matcher(e5).matches_for("la", "r-lao", k=1)[0]
    evidence = best.semantic_evidence
    assert evidence is not None and evidence.side == "request" and evidence.model == "e5"
    assert evidence.sentence in {LAO_TITLE, LAO_NEED}
    assert "closest in meaning (e5, request side" in best.explanation()
    assert best.to_json()["semantic_evidence"] == evidence.to_json()


def test_vectors_are_stored_as_int8_codes_with_a_scale(e5: CachedEncoder) -> None:
    m = _matcher(e5)
    dense = m.stores["offer"].dense
    assert dense is not None and len(dense) == 3
    assert dense.codes.view.dtype == np.int8 and dense.codes.view.shape == (3, 384)
    assert dense.scales.view.dtype == np.float32
    # The largest component of each row is at full scale, and the rows stay unit length.
    assert (np.abs(dense.codes.view).max(axis=1) == 127).all()
    norms = np.linalg.norm(dense.unit(np.arange(3)), axis=1)
    assert np.allclose(norms, 1.0, atol=5e-3)


def test_each_text_is_encoded_once_per_process(e5: CachedEncoder) -> None:
    calls: list[int] = []

    class Counting:
        name = "counting"

        def encode(self, texts: Any) -> Any:
            calls.append(len(texts))
            return e5.inner.encode(texts)

    cached = CachedEncoder(Counting())
    first = cached.encode(["shrimp pond", "micro hydro"])
    again = cached.encode(["micro hydro", "shrimp pond", "new text"])
    assert calls == [2, 1]
    assert np.allclose(first[::-1], again[:2])


def test_the_default_matcher_uses_the_installed_model(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CATTC_SEMANTIC", raising=False)
    m = Matcher(NOW, encoder="default")
    assert m.semantic.enabled and m.semantic.model == DEFAULT_MODEL and m.semantic.reason is None
    assert m.encoder is load_encoder(DEFAULT_MODEL)


def test_switched_off_the_matcher_is_lexical_and_says_why(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CATTC_SEMANTIC", "off")
    m = Matcher(NOW, encoder="default")
    assert m.encoder is None and not m.semantic.enabled
    assert m.semantic.to_json() == {
        "enabled": False,
        "model": None,
        "reason": "switched off by CATTC_SEMANTIC=off",
    }


def test_a_model_that_cannot_load_falls_back_to_lexical_with_the_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CATTC_SEMANTIC", "no-such-model")
    encoder, status = load_default()
    assert encoder is None and not status.enabled and status.model == "no-such-model"
    assert "unknown model 'no-such-model'" in (status.reason or "")
    m = Matcher(NOW, encoder="default")
    m.upsert_many([("cn", offer("o1", "Shrimp pond aeration")), ("vn", request("r1", "Shrimp"))])
    assert m.matches_for("vn", "r1")[0].candidate == ("cn", "o1")
    assert "semantic" not in m.matches_for("vn", "r1")[0].components


def test_load_encoder_rejects_unknown_names() -> None:
    with pytest.raises(EncoderUnavailable, match="unknown model"):
        load_encoder("nope")


def test_a_model_named_is_loaded_and_an_unknown_name_is_lexical_with_the_reason() -> None:
    m = Matcher(NOW, encoder=DEFAULT_MODEL)  # what the hub's worker is given
    assert m.semantic.enabled and m.encoder is load_encoder(DEFAULT_MODEL)
    unknown = Matcher(NOW, encoder="nope")
    assert unknown.encoder is None and not unknown.semantic.enabled
    assert unknown.semantic.model == "nope"
    assert "unknown model 'nope'" in (unknown.semantic.reason or "")
