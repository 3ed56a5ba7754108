"""Embeddings held as int8 codes and a scale per row (node.matching.vectors)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from node.matching import ivf
from node.matching.vectors import (
    QMAX,
    Vectors,
    block_cosines,
    pair_cosines,
    quantise,
)

DIM = 384


def unit_rows(n: int, seed: int) -> np.ndarray:
    """Rows like a sentence model's: unit length, all components of one sign share a
    direction (so cosines sit high and close together, as e5's do), a few large ones."""
    rng = np.random.default_rng(seed)
    common = rng.normal(size=DIM)
    x = rng.normal(size=(n, DIM)) + 2.5 * common
    x[:, rng.choice(DIM, 3, replace=False)] *= 4  # outlying dimensions
    out: np.ndarray = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    return out


def held(rows: np.ndarray, empty: tuple[int, ...] = ()) -> Vectors:
    v = Vectors(DIM)
    for i, row in enumerate(rows):
        v.append(None if i in empty else quantise(row))
    return v


def test_cosines_stay_within_the_rounding_bound_of_the_float32_ones() -> None:
    """Each component is off by at most half its row's scale, so a cosine is off by at
    most ``s_a / 2 * |b|_1 + s_b / 2 * |a|_1 + d * s_a * s_b / 4``; on e5's vectors of the
    sample that came to 0.0003 on average."""
    a, b = unit_rows(200, 1), unit_rows(300, 2)
    va, vb = held(a), held(b)
    exact = a @ b.T
    got = block_cosines(va, np.arange(200), vb, np.arange(300))
    sa, sb = va.scales.view[:, None], vb.scales.view[None, :]
    bound = (
        sa / 2 * np.abs(b).sum(axis=1)[None, :]
        + sb / 2 * np.abs(a).sum(axis=1)[:, None]
        + DIM * sa * sb / 4
    )
    err = np.abs(got - exact)
    assert (err <= bound * 1.001).all()
    assert err.mean() < 1e-3, err.mean()


def test_every_route_gives_the_same_cosine_bit_for_bit() -> None:
    """One against many, every pair of two blocks, and arbitrary pairs: the code dots are
    exact in float32 whatever the order of the sums, so the three agree exactly."""
    a, b = held(unit_rows(70, 3)), held(unit_rows(20_000, 4), empty=(5, 17))
    ai, bi = np.arange(70), np.arange(20_000)
    grid = block_cosines(a, ai, b, bi)
    for i in (0, 33, 69):
        assert np.array_equal(b.against(a.row(i), bi), grid[i])
    rng = np.random.default_rng(5)
    pi, pj = rng.integers(0, 70, 30_000), rng.integers(0, 20_000, 30_000)
    assert np.array_equal(pair_cosines(a, pi, b, pj), grid[pi, pj])
    # In the other direction too (b's rows against a's).
    assert np.array_equal(block_cosines(b, bi[:50], a, ai), grid[:, :50].T)


def test_rows_without_a_vector_are_zero_and_give_zero() -> None:
    rows = unit_rows(4, 6)
    v = held(rows, empty=(1,))
    v.extend_empty(2)
    assert len(v) == 6
    assert not v.codes.view[[1, 4, 5]].any() and not v.scales.view[[1, 4, 5]].any()
    cos = v.against(v.row(0), np.arange(6))
    assert cos[1] == cos[4] == cos[5] == 0.0
    assert cos[0] == pytest.approx(1.0, abs=5e-3)
    v.set(4, quantise(rows[2]))  # a vector given later
    assert np.array_equal(v.row(4).codes, v.row(2).codes) and v.row(4).scale == v.row(2).scale


@pytest.mark.parametrize(
    "vector",
    [np.zeros(DIM), np.full(DIM, np.nan), np.full(DIM, np.inf)],
    ids=["zero", "nan", "inf"],
)
def test_a_vector_without_a_direction_is_held_as_none(vector: np.ndarray) -> None:
    row = quantise(vector)
    assert not row.codes.any() and row.scale == 0.0


def test_a_held_row_quantised_again_is_the_same_row() -> None:
    """A listing re-sent with the same text keeps its held row (``Matcher._held_vector``);
    codes at full scale map back onto themselves."""
    row = quantise(unit_rows(1, 7)[0])
    assert np.abs(row.codes).max() == QMAX
    v = Vectors(DIM)
    v.append(row)
    again = v.row(0)
    assert np.array_equal(again.codes, row.codes) and again.scale == row.scale


def sketch_store(rows: np.ndarray, empty: tuple[int, ...] = ()) -> Any:
    """A stand-in for a kind's store as ``ivf``'s dense sketch reads it."""
    dense = held(rows, empty)
    return SimpleNamespace(dense=dense, has_dense=SimpleNamespace(view=dense.scales.view > 0))


def test_the_sketch_keeps_the_embedding_dot_products_in_few_coordinates() -> None:
    """The bulk ranking's sketch holds an embedding's coordinates in ``dims`` directions
    (the mean's, then the principal ones of the rest), not all 384 of them. With as many
    directions as dimensions the dot products are kept exactly; with 64 they are kept
    far better than by chance; a listing without a vector has no coordinates."""
    rows = unit_rows(600, 8)
    store = sketch_store(rows, empty=(3,))
    slots = np.arange(600)
    full = store.dense.unit(slots)
    exact = full @ full.T
    whole = ivf._project_dense(store, slots, ivf._dense_basis(store, slots, DIM))
    assert np.allclose(whole @ whole.T, exact, atol=1e-4)
    basis = ivf._dense_basis(store, slots, 64)
    assert basis.shape == (64, DIM) and np.allclose(basis @ basis.T, np.eye(64), atol=1e-4)
    few = ivf._project_dense(store, slots, basis)
    assert not few[3].any()
    err = np.abs(few @ few.T - exact)[np.triu_indices(600, 1)]
    rng = np.random.default_rng(9)
    chance = np.linalg.qr(rng.normal(size=(DIM, 64)))[0].T.astype(np.float32)
    err_chance = np.abs((full @ chance.T) @ (full @ chance.T).T - exact)[np.triu_indices(600, 1)]
    assert err.mean() < err_chance.mean() / 4, (err.mean(), err_chance.mean())
