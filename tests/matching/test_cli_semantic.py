"""``cattc eval`` output, and the semantic plumbing with a stand-in encoder (the real
model's tests are in test_semantic_default.py)."""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from click.testing import CliRunner

from node.matching import Matcher
from node.matching.cli import eval_cmd
from node.matching.text import tokens
from tests.matching.helpers import NOW, offer, request
from tests.paths import DATA, PROJECT_ROOT, require

HARD = PROJECT_ROOT / "bench" / "eval"


class HashingEncoder:
    """Deterministic bag-of-words vectors: enough to exercise the semantic plumbing."""

    name = "hashing"

    def __init__(self) -> None:
        self.calls = 0

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        self.calls += 1
        out = np.zeros((len(texts), 64), dtype=np.float32)
        for i, text in enumerate(texts):
            for tok in tokens(text):
                out[i, zlib.crc32(tok.encode()) % 64] += 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return (out / np.where(norms == 0, 1.0, norms)).astype(np.float32)


def test_eval_command_prints_an_aligned_table() -> None:
    listings = str(require(DATA / "listings.jsonl"))
    pairs = str(require(DATA / "match_pairs.csv"))
    hard = [str(require(HARD / "hard_listings.jsonl")), str(require(HARD / "hard_pairs.csv"))]
    args = [listings, pairs, "--extra", *hard, "--semantic", "none"]
    result = CliRunner().invoke(eval_cmd, args)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["set", "system", "nDCG@10", "recall@10", "violations", "requests"]
    assert {line.split()[0] for line in lines[2:]} == {"listings", "hard_listings", "all"}
    assert {line.split()[1] for line in lines[2:]} == {"lexical", "bm25"}
    pooled = [line.split() for line in lines[2:] if line.startswith("all")]
    assert [row[5] for row in pooled] == ["104", "104"]


def test_eval_command_json() -> None:
    listings = str(require(DATA / "listings.jsonl"))
    pairs = str(require(DATA / "match_pairs.csv"))
    result = CliRunner().invoke(eval_cmd, [listings, pairs, "--json", "--semantic", "none"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data[0]["requests"] == 44 and data[0]["pairs"] == 49
    assert [r["system"] for r in data[0]["results"]] == ["lexical", "bm25"]


def test_eval_command_fails_in_one_line_on_an_unknown_model() -> None:
    listings = str(require(DATA / "listings.jsonl"))
    pairs = str(require(DATA / "match_pairs.csv"))
    result = CliRunner().invoke(eval_cmd, [listings, pairs, "--semantic", "nope"])
    assert result.exit_code != 0
    assert "unknown model" in result.output


def test_semantic_component_is_added_and_vectors_computed_once_per_batch() -> None:
    encoder = HashingEncoder()
    m = Matcher(NOW, encoder=encoder)
    m.upsert_many([("cn", offer("o1", "Shrimp pond aeration")), ("vn", request("r1", "Shrimp"))])
    assert encoder.calls == 2  # one batch of requests, one of candidates
    m.top_matches()
    assert encoder.calls == 2  # stored on arrival, never re-encoded
    match = m.matches_for("vn", "r1")[0]
    assert 0.0 <= match.components["semantic"] <= 1.0
    assert encoder.calls == 3  # the request's sentences, for the evidence only


def test_without_an_encoder_there_is_no_semantic_component() -> None:
    m = Matcher(NOW)
    m.upsert_many([("cn", offer("o1", "Shrimp pond aeration")), ("vn", request("r1", "Shrimp"))])
    assert "semantic" not in m.matches_for("vn", "r1")[0].components
