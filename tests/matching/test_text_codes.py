"""Tokenizer, concept lexicon and taxonomy codes, the last checked against ../shared."""

from __future__ import annotations

import csv
import itertools
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from node.matching.code_overlap import (
    IPC_CLASS,
    IPC_SECTION,
    IPC_SUBCLASS,
    ISIC_DIVISION,
    ISIC_SECTION,
    ipc_similarity,
    isic_similarity,
)
from node.matching.codes import (
    MAX_IPC,
    encode,
    ipc_code,
    ipc_parent,
    ipc_symbol,
    isic_code,
    isic_section_of_division,
)
from node.matching.concepts import ConceptLexicon, default_lexicon
from node.matching.text import (
    CACHED_WORD,
    _stem,
    _stem_cached,
    char_ngrams,
    fold,
    raw_words,
    stem,
    tokens,
)

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


def test_long_runs_of_letters_are_stemmed_but_never_remembered() -> None:
    """A hostile listing's runs of letters, up to a field's 2,000, are stemmed as any word
    but the stemmer's cache keeps none of them: it holds words of at most CACHED_WORD
    letters (each such run it remembered cost ~4 KB: the word and its stem)."""
    runs = [
        "".join(p) + "s" * 1_995 for p in itertools.islice(itertools.product("bcdk", repeat=4), 200)
    ]
    assert len(set(runs)) == 200 and all(len(raw_words(r)) == 1 for r in runs[:3])
    before = _stem_cached.cache_info().currsize
    assert [stem(r) for r in runs] == [_stem(r) for r in runs]
    assert tokens(" ".join(runs[:20])) == [_stem(r) for r in runs[:20]]
    assert _stem_cached.cache_info().currsize == before
    word = "x" * (CACHED_WORD - 8) + "batteries"[:8]  # as long as a word is remembered
    assert len(word) == CACHED_WORD and stem(word) == _stem(word)
    assert _stem_cached.cache_info().currsize == before + 1


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


def _pair_by_pair(req: np.ndarray, cand: np.ndarray, levels: list[tuple[int, int, float]]) -> float:
    """The hierarchy score of one pair, spelled out: for each request code, the weight of
    the finest level it shares with any candidate code; 0.6 x best + 0.4 x their mean."""

    def key(code: int, divisor: int, modulus: int) -> int:
        k = code // divisor
        return k if not modulus or k % modulus > 0 else 0

    bests = []
    for r in (int(c) for c in req if c):
        best = 0.0
        for divisor, modulus, weight in levels:
            kr = key(r, divisor, modulus)
            if kr and any(key(int(c), divisor, modulus) == kr for c in cand if c):
                best = weight
        bests.append(best)
    if not bests:
        return 0.0
    return 0.6 * max(bests) + 0.4 * sum(bests) / len(bests)


def _random_codes(rng: np.random.Generator, rows: int, width: int, ipc: bool) -> np.ndarray:
    """Codes from a few sections, classes and subclasses (so that pairs share some levels),
    some absent and some rows without any."""
    n = rows * width
    if ipc:
        flat = rng.integers(1, 4, n) * 10_000 + rng.integers(0, 3, n) * 100 + rng.integers(0, 3, n)
    else:
        flat = rng.integers(1, 4, n) * 100 + rng.integers(0, 3, n)
    out = flat.reshape(rows, width).astype(np.int32)
    out[rng.random((rows, width)) < 0.4] = 0
    return out


@pytest.mark.parametrize("ipc", [True, False])
def test_code_similarities_of_arrays_equal_the_pair_by_pair_rule(ipc: bool) -> None:
    """Many pairs at once, one request (or one candidate) against many, and every request
    of a block against every candidate (the grid of a re-match pass)."""
    rng = np.random.default_rng(11)
    if ipc:
        similarity, width = ipc_similarity, 4
        levels = [(10_000, 0, IPC_SECTION), (100, 100, IPC_CLASS), (1, 100, IPC_SUBCLASS)]
    else:
        similarity, width = isic_similarity, 3
        levels = [(100, 0, ISIC_SECTION), (1, 100, ISIC_DIVISION)]
    req, cand = _random_codes(rng, 300, width, ipc), _random_codes(rng, 300, width, ipc)
    got = similarity(req, cand)
    want = [_pair_by_pair(r, c, levels) for r, c in zip(req, cand, strict=True)]
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    assert (got > 0).sum() > 50 and (got == 0).sum() > 10
    one = similarity(req[:1], cand)
    np.testing.assert_allclose(one, [_pair_by_pair(req[0], c, levels) for c in cand], atol=1e-7)
    many = similarity(req, cand[:1])
    np.testing.assert_allclose(many, [_pair_by_pair(r, cand[0], levels) for r in req], atol=1e-7)
    grid = similarity(req[:40], cand[:30], grid=True)
    assert grid.shape == (40, 30)
    expect = [[_pair_by_pair(r, c, levels) for c in cand[:30]] for r in req[:40]]
    np.testing.assert_allclose(grid, expect, atol=1e-7)


def test_codes_are_the_first_distinct_ones_up_to_the_cap_whatever_else_comes() -> None:
    """A member sent 20,592 IPC codes in one summary: taking them in took 6 s (a list
    searched for each), with every member waiting on the one matching worker. The codes
    kept are the first distinct valid ones, and reading stops at the cap."""
    seen: list[str] = []

    def codes() -> Iterator[str]:
        for value in ["A01B", "junk", "A01B", "C08L", *(f"H{n:02d}K" for n in range(1, 100))]:
            seen.append(value)
            yield value

    kept = encode(codes(), "ipc")
    assert kept == tuple(ipc_code(v) for v in ["A01B", "C08L", "H01K", "H02K"])
    assert len(kept) == MAX_IPC and len(seen) == 6  # nothing read past the fourth code
