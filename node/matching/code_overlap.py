"""How close two listings' taxonomy codes are, for many pairs at once (numpy): the codes
are the integers of ``codes``, whose encoding carries the IPC and ISIC hierarchies."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

IPC_SUBCLASS, IPC_CLASS, IPC_SECTION = 1.0, 0.5, 0.2
ISIC_DIVISION, ISIC_SECTION = 1.0, 0.3


def _hierarchy(
    req: npt.NDArray[np.int32],
    cand: npt.NDArray[np.int32],
    levels: tuple[tuple[int, int, float], ...],
    grid: bool = False,
) -> npt.NDArray[np.float32]:
    """Best shared level per request code, combined as ``0.6 * best + 0.4 * mean over the
    request's codes``. ``levels``: (divisor, modulus for "this level is present", weight),
    coarse to fine. Pairs: row i of ``req`` with row i of ``cand``, either side may have
    one row (broadcast against the other's rows). ``grid``: every row of ``req`` with
    every row of ``cand``, shape (len(req), len(cand)); each side's level keys are then
    cut once per row, not once per pair."""
    shape = (len(req), len(cand)) if grid else (max(len(req), len(cand)),)
    # Columns contiguous (a code position of every row is a row), and the coarse-to-fine
    # weights rise, so a finer level's hit overwrites a coarser one's in place; no
    # temporaries per hit.
    keys_r = [np.ascontiguousarray(_level_keys(req, d, m).T) for d, m, _ in levels]
    keys_c = [np.ascontiguousarray(_level_keys(cand, d, m).T) for d, m, _ in levels]
    cand_cols = np.flatnonzero(cand.any(axis=0)).tolist()
    req_cols = np.flatnonzero(req.any(axis=0)).tolist()
    total = np.zeros(shape, dtype=np.float32)
    top = np.zeros(shape, dtype=np.float32)
    best = np.empty(shape, dtype=np.float32)
    hit = np.empty(shape, dtype=np.bool_)
    for i in req_cols:
        best.fill(0.0)
        for (_, _, weight), kr, kc in zip(levels, keys_r, keys_c, strict=True):
            left = kr[i][:, None] if grid else kr[i]  # one number when one request
            nonzero = left != 0
            if not nonzero.any():
                continue
            for j in cand_cols:
                np.equal(left, kc[j][None, :] if grid else kc[j], out=hit)
                hit &= nonzero
                np.copyto(best, np.float32(weight), where=hit)
        total += best
        np.maximum(top, best, out=top)
    present = np.maximum((req > 0).sum(axis=1), 1)
    out: npt.NDArray[np.float32] = (
        0.6 * top + 0.4 * total / (present[:, None] if grid else present)
    ).astype(np.float32)
    return out


def _level_keys(codes: npt.NDArray[np.int32], divisor: int, modulus: int) -> npt.NDArray[np.int32]:
    """The code cut to one level (0 where the code does not go that deep)."""
    keys = codes // divisor
    if modulus:
        keys = np.where(keys % modulus > 0, keys, 0)
    return keys.astype(np.int32)


def ipc_similarity(
    req: npt.NDArray[np.int32], cand: npt.NDArray[np.int32], grid: bool = False
) -> npt.NDArray[np.float32]:
    """Hierarchical IPC overlap of each pair in [0, 1]: same subclass 1.0, same class 0.5,
    same section 0.2. Shapes (P, MAX_IPC) -> (P,); one side may have a single row. With
    ``grid``: (R, MAX_IPC) and (C, MAX_IPC) -> (R, C), every request with every candidate."""
    levels = ((10_000, 0, IPC_SECTION), (100, 100, IPC_CLASS), (1, 100, IPC_SUBCLASS))
    return _hierarchy(req, cand, levels, grid)


def isic_similarity(
    req: npt.NDArray[np.int32], cand: npt.NDArray[np.int32], grid: bool = False
) -> npt.NDArray[np.float32]:
    """ISIC overlap at division level (1.0), or same section only (0.3); ``grid`` as for
    ``ipc_similarity``."""
    levels = ((100, 0, ISIC_SECTION), (1, 100, ISIC_DIVISION))
    return _hierarchy(req, cand, levels, grid)
