"""Tokenizer, concept lexicon and taxonomy codes, the last checked against ../shared."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from node.matching.codes import (
    encode,
    ipc_code,
    ipc_parent,
    ipc_similarity,
    ipc_symbol,
    isic_code,
    isic_section_of_division,
    isic_similarity,
)
from node.matching.concepts import ConceptLexicon, default_lexicon
from node.matching.text import char_ngrams, fold, raw_words, stem, tokens

TAXONOMY = Path(__file__).resolve().parents[2].parent / "shared" / "testdata" / "taxonomy"


def _taxonomy(name: str) -> Path:
    path = TAXONOMY / name
    if not path.exists():
        pytest.fail(f"taxonomy file missing: {path} (expected in ../shared/testdata/taxonomy)")
    return path


def test_fold_strips_latin_diacritics_only() -> None:
    assert fold("Nước thải") == "nuoc thai"
    assert fold("ทุเรียน") == "ทุเรียน"  # Thai vowel signs are kept


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("prawns", "prawn"),
        ("colour", "color"),
        ("deproteinised", "deproteinized"),
        ("utilisation", "utilization"),
        ("odour", "odor"),
        ("swapping", "swap"),
        ("batteries", "battery"),
        ("died", "die"),
    ],
)
def test_stem_joins_variants(a: str, b: str) -> None:
    assert stem(a) == stem(b)


def test_tokens_drop_stopwords_and_numbers_and_split_unspaced_scripts() -> None:
    assert tokens("The 12 prawns in the pond") == ["prawn", "pond"]
    assert tokens("榴莲") == ["榴莲"]
    assert tokens("e-mobility") == [stem("e"), stem("mobility"), stem("emobility")][1:]


def test_char_ngrams_share_subwords() -> None:
    a = set(char_ngrams(raw_words("deproteinised")))
    b = set(char_ngrams(raw_words("protein")))
    assert {"prot", "rote", "otei"} <= a & b


def test_concept_triggers_phrases_conjunctions_and_scripts() -> None:
    lexicon = ConceptLexicon({"swap": "battery swapping|exchange+battery", "durian": "ทุเรียน"})
    assert lexicon.find(["Battery-swapping cabinets"])["swap"] == 1
    assert lexicon.find(["Drivers exchange a flat battery for a charged one"])["swap"] == 1
    assert lexicon.find(["exchange rates. Battery packs"])["swap"] == 0  # not one sentence
    assert lexicon.find(["ผู้ซื้อปฏิเสธทุเรียนอ่อน"])["durian"] == 1


def test_default_lexicon_links_problem_and_solution_wording() -> None:
    lexicon = default_lexicon()
    problem = lexicon.find(["Our prawns keep dying after every heavy rain"])
    solution = lexicon.find(["Buffering keeps pond water quality stable for shrimp"])
    assert {"shrimp", "aqua_water_quality"} <= set(problem) & set(solution)


def test_ipc_hierarchy_matches_the_taxonomy_file() -> None:
    with _taxonomy("ipc8_2006_core_hierarchy.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    checked = 0
    for row in rows:
        if row["level"] in {"section", "class", "subclass"}:
            assert ipc_symbol(ipc_code(row["symbol"])) == row["symbol"]
            assert (ipc_parent(row["symbol"]) or "") == row["parent"]
            checked += 1
        elif row["level"] == "main_group":
            assert ipc_symbol(ipc_code(row["symbol"])) == row["parent"]
    assert checked > 600


def test_isic_sections_match_the_taxonomy_file() -> None:
    with _taxonomy("isic_rev4.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    divisions = [r for r in rows if r["level"] == "division"]
    assert len(divisions) > 80
    for row in divisions:
        section = ord(row["parent"]) - ord("A") + 1
        assert isic_section_of_division(int(row["code"])) == section
        assert isic_code(row["code"]) == section * 100 + int(row["code"])


def _ipc(*symbols: str) -> np.ndarray:
    return np.array([list(encode(symbols, "ipc")) + [0] * (4 - len(symbols))], dtype=np.int32)


def test_ipc_similarity_levels() -> None:
    req = _ipc("A01G")
    same_subclass = ipc_similarity(req, _ipc("A01G 9/14"))[0]
    same_class = ipc_similarity(req, _ipc("A01H"))[0]
    same_section = ipc_similarity(req, _ipc("A23L"))[0]
    other = ipc_similarity(req, _ipc("H01M"))[0]
    assert same_subclass == pytest.approx(1.0)
    assert same_subclass > same_class > same_section > other == 0.0


def test_isic_similarity_division_then_section() -> None:
    req = np.array([[isic_code("10"), 0, 0]], dtype=np.int32)
    same = np.array([[isic_code("1010"), 0, 0]], dtype=np.int32)
    section = np.array([[isic_code("21"), 0, 0]], dtype=np.int32)
    other = np.array([[isic_code("62"), 0, 0]], dtype=np.int32)
    values = [isic_similarity(req, c)[0] for c in (same, section, other)]
    assert values[0] == pytest.approx(1.0)
    assert values[0] > values[1] > values[2] == 0.0
