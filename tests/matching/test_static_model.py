"""e5-static, the static model distilled from e5: shipped files loaded offline,
deterministic, cross-lingual, array-based, and robust to odd input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from node.matching import static_model
from node.matching.model_choice import HUB_MODEL, hub_encoder_name
from node.matching.semantic import (
    CachedEncoder,
    EncoderUnavailable,
    load_default,
    load_encoder,
)
from node.matching.static_model import StaticModel, StaticModelError

# Sentences written for these tests (general topics, none from the evaluation sets).
WATER_EN = "A filter that makes well water safe to drink for a village"
PHONE_EN = "Repairing broken mobile phone screens in a small shop"
WATER = {
    "lo": "ເຄື່ອງກັ່ນຕອງນ້ຳບາດານໃຫ້ສະອາດສຳລັບດື່ມໃນບ້ານ",
    "th": "เครื่องกรองน้ำบาดาลให้สะอาดสำหรับดื่มในหมู่บ้าน",
    "vi": "Máy lọc nước giếng để có nước uống sạch cho cả làng",
    "zh": "为村庄过滤井水，使其可以安全饮用的净水器",
}


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b)


def test_the_shipped_model_loads_offline_as_arrays(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = StaticModel()
    assert isinstance(model._vectors, np.memmap) and model._vectors.dtype == np.int8
    assert model._scales.dtype == np.float32 and len(model._scales) == model.pieces
    assert model.dim >= 64 and model.pieces > 10_000
    size = sum(p.stat().st_size for p in static_model.MODEL_DIR.iterdir())
    assert size <= 20 * 1024 * 1024
    assert "MIT" in (static_model.MODEL_DIR / "NOTICE").read_text()


def test_encoding_is_deterministic_and_independent_of_the_batch(
    e5_static: CachedEncoder,
) -> None:
    inner = e5_static.inner
    one = inner.encode([WATER_EN])
    many = inner.encode([PHONE_EN, WATER_EN, WATER["vi"]])
    assert one.dtype == np.float32 and one.shape == (1, many.shape[1])
    assert np.array_equal(one[0], many[1])
    assert np.array_equal(many, inner.encode([PHONE_EN, WATER_EN, WATER["vi"]]))
    assert np.allclose(np.linalg.norm(many, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("lang", sorted(WATER))
def test_a_sentence_in_a_members_language_is_nearest_the_english_one_on_its_topic(
    e5_static: CachedEncoder, lang: str
) -> None:
    local, water, phone = e5_static.inner.encode([WATER[lang], WATER_EN, PHONE_EN])
    assert _cos(local, water) > _cos(local, phone)


def test_bad_input_gives_rows_of_the_right_shape(e5_static: CachedEncoder) -> None:
    texts = ["", "   \n\t", "😀🚀" * 50, "x\x00y", "a\ud800b", "\u202e\u200b", "水" * 100_000]
    out = e5_static.inner.encode(texts)
    assert out.shape == (len(texts), out.shape[1]) and np.isfinite(out).all()
    assert not out[0].any() and not out[1].any()  # nothing to encode: a zero row
    norms = np.linalg.norm(out[3:], axis=1)
    assert np.allclose(norms[norms > 0], 1.0, atol=1e-5)
    assert np.linalg.norm(out[-1]) > 0  # a very long text is cut, not refused
    assert e5_static.inner.encode([]).shape == (0, out.shape[1])


def test_missing_or_mismatched_files_are_reported(tmp_path: Path) -> None:
    with pytest.raises(StaticModelError, match="cannot load"):
        StaticModel(tmp_path)
    for name in (static_model.TOKENIZER, static_model.VECTORS):
        shutil.copy(static_model.MODEL_DIR / name, tmp_path / name)
    np.save(tmp_path / static_model.SCALES, np.ones(3, dtype=np.float32))
    with pytest.raises(StaticModelError, match="does not fit together"):
        StaticModel(tmp_path)
    (tmp_path / static_model.TOKENIZER).write_text(json.dumps({"not": "a tokenizer"}))
    with pytest.raises(StaticModelError, match="cannot load"):
        StaticModel(tmp_path)


def test_the_hub_loads_it_when_cattc_semantic_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CATTC_SEMANTIC", "e5-static")
    assert hub_encoder_name() == "e5-static"
    encoder, status = load_default()
    assert encoder is load_encoder("e5-static") and status.enabled
    assert encoder.batch_size > 32 and not encoder.asymmetric


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("off", None),
        ("none", None),
        (" Lexical ", None),
        ("e5", "e5"),
        (" E5-Static", "e5-static"),
        ("", HUB_MODEL),
    ],
)
def test_hub_encoder_name_follows_cattc_semantic(
    monkeypatch: pytest.MonkeyPatch, value: str, expected: str | None
) -> None:
    monkeypatch.setenv("CATTC_SEMANTIC", value)
    assert hub_encoder_name() == expected


def test_an_unknown_model_name_is_refused() -> None:
    with pytest.raises(EncoderUnavailable, match="e5-static"):
        load_encoder("e5-statics")
