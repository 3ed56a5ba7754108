"""Per-kind slots: the numbers the scorer reads for many pairs at once.

A ``KindStore`` keeps, for every request (or offer, or expert) the hub holds, its sparse
term rows, its optional embedding and small integer columns (expiry, TRL, partnership and
target-country bit masks, IPC and ISIC codes), so that components and hard constraints are
numpy expressions over candidate arrays rather than Python loops over listings.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import overload

import numpy as np
import numpy.typing as npt

from node.matching.calibration import DEFAULT_SCALE
from node.matching.codes import MAX_IPC, MAX_ISIC
from node.matching.features import PARTNERSHIPS, SECTORS, Features, Ref
from node.matching.index import Growable, SparseRows, Vocabulary
from node.matching.reftable import KeyIds, RefTable, StringColumn
from node.matching.vectors import KEY_BYTES, Quantised, Vectors, text_key

# The sparse spaces a matcher holds: character n-grams of titles and keywords only when it
# matches lexically. With a model they added nothing on the dev split (nDCG@10 0.958 with,
# 0.959 without) and held a third of the matcher's structures (~725 of 1,953 bytes a
# listing: 145 MB of the hub's worker at 200,000 listings); without one they still add a
# little (dev local 0.725 with, 0.716 without) and keep sub-word matches ("deproteinised",
# "protein").
SPACES = ("text", "concepts", "ngrams")
SEMANTIC_SPACES = ("text", "concepts")
# Codes a request may get inferred from its text when it names none (``infer``), and how
# many of each kind are kept per request.
INFER_KINDS = ("sector", "ipc", "isic")
INFER_TOP = 3
# Slots whose set of coded columns is found again one by one (``coded_changed``), or sets
# left without a member, before the whole table is made again instead. At 100,000 x
# 100,000, 1,500 listings removed cost the next match 11 ms more; making it again, 1.4 s.
REKEY_MIN, REKEY_SHARE = 1_000, 0.2
NEVER = np.iinfo(np.int64).max
SPELLING_CODES = 65_535  # spellings a store numbers in 2 bytes a term, before 4
_PARTNER_BIT = {p: 1 << i for i, p in enumerate(PARTNERSHIPS)}
_SECTOR_BIT = {s: 1 << i for i, s in enumerate(SECTORS)}


class NodeBits:
    """Node id -> one bit of an int64 mask (63 nodes; later ones share the last bit)."""

    def __init__(self) -> None:
        self._bits: dict[str, int] = {}

    def bit(self, node: str) -> int:
        if node not in self._bits:
            self._bits[node] = 1 << min(len(self._bits), 62)
        return self._bits[node]

    def mask(self, nodes: frozenset[str] | None) -> int:
        return 0 if not nodes else int(np.bitwise_or.reduce([self.bit(n) for n in sorted(nodes)]))


_EMPTY: dict[str, float] = {}  # the terms of a listing read back: kept in the rows


def _mask(values: frozenset[str] | None, bits: dict[str, int]) -> int:
    return sum(bits[v] for v in values or () if v in bits)


def _codes(values: tuple[int, ...], width: int) -> list[int]:
    return list(values[:width]) + [0] * (width - len(values[:width]))


def kind_has_surface(kind: str) -> bool:
    """Whether a kind's stores keep the spelling of each term (requests only)."""
    return kind == "request"


_SECTOR_OF_BIT = [(bit, s) for s, bit in _SECTOR_BIT.items()]
_PARTNER_OF_BIT = [(bit, p) for p, bit in _PARTNER_BIT.items()]


def _unmask(mask: int, bits: list[tuple[int, str]]) -> frozenset[str]:
    return frozenset(name for bit, name in bits if mask & bit)


class FeatureView(Sequence[Features | None]):
    """A store's listings by slot, as ``Features`` made from its columns when read (None
    for a dead slot); their terms are in the store's rows, not here."""

    def __init__(self, store: KindStore) -> None:
        self._store = store

    def __len__(self) -> int:
        return self._store.slot_of.numbered

    @overload
    def __getitem__(self, slot: int) -> Features | None: ...

    @overload
    def __getitem__(self, slot: slice) -> Sequence[Features | None]: ...

    def __getitem__(self, slot: int | slice) -> Features | None | Sequence[Features | None]:
        if isinstance(slot, slice):
            return [self._store.feature(i) for i in range(len(self))[slot]]
        if not 0 <= slot < len(self):
            raise IndexError(slot)
        return self._store.feature(slot)


class KindStore:
    """Slots of one kind; dead slots stay until the matcher compacts.

    Nothing is kept as a Python object per listing: a listing's key, title, version and
    target countries are columns (``slot_of``, ``titles``...), and ``features[slot]``
    makes its ``Features`` from them when asked."""

    def __init__(self, kind: str, vocabs: dict[str, Vocabulary], nodes: NodeBits) -> None:
        self.kind = kind
        self.vocabs = vocabs
        self.nodes = nodes
        self.slot_of = RefTable()  # a listing's number there is its slot
        self.features = FeatureView(self)
        self.versions = Growable(np.int64)
        self.titles = StringColumn()
        self.texts = StringColumn()  # "" unless keep_text
        # With a model (``semantic``): the ``text_key`` of each listing's text, what tells
        # whether a vector is still its own (a new version, a vector kept by an earlier
        # process, a text read back from the database), 16 bytes a listing; and whether
        # it waits for its vector (the matcher's ``defer_encoding``).
        self.keys = Growable(np.uint8, width=KEY_BYTES)
        self.pending = Growable(np.bool_)
        # Target countries: a number into the distinct sets (0: none named).
        self.targets = Growable(np.int32)
        self._target_sets: list[frozenset[str] | None] = [None]
        self._target_no: dict[frozenset[str] | None, int] = {None: 0}
        self.spaces = tuple(vocabs)  # SPACES, or SEMANTIC_SPACES with a model
        self.sparse = {space: SparseRows(vocabs[space]) for space in self.spaces}
        # Requests only: the spelling of each term of a text row, what
        # ``match.shared_terms`` shows (a candidate's spelling is never shown): an id per
        # entry of the row (0: the stem itself) into ``spellings``, 2 bytes a term (4 past
        # SPELLING_CODES spellings) instead of a tuple of strings a listing.
        self.spelled = Growable(np.uint16)  # int32 once there are more spellings
        self.spellings: list[str] = [""]
        self._spelling_ids: dict[str, int] = {"": 0}
        self.semantic = False  # a model encodes the listings: ``keys`` are kept
        # The text itself, where the matcher has no ``text_source`` to read it back from.
        self.keep_text = False
        self.alive = Growable(np.bool_)
        self.expires = Growable(np.int64, fill=NEVER)
        self.trl = Growable(np.int8, fill=-1)
        self.trl_min = Growable(np.int8, fill=-1)
        self.pmask = Growable(np.int64)
        self.tmask = Growable(np.int64)
        self.obit = Growable(np.int64)
        self.smask = Growable(np.int64)
        self.ipc = Growable(np.int32, width=MAX_IPC)
        self.isic = Growable(np.int32, width=MAX_ISIC)
        # Embeddings as int8 codes and a scale per row (``vectors``), made at the first.
        self.dense: Vectors | None = None
        # Cosine -> semantic component: clip((cos - zero) / span, 0, 1), per model.
        self.sem_scale = DEFAULT_SCALE
        self.has_dense = Growable(np.bool_)
        self.has_concepts = Growable(np.bool_)
        # Codes inferred from the text (requests without codes of a kind), per kind: codes
        # and probabilities, INFER_TOP a slot; made for a kind when first inferred.
        self._inferred: dict[str, tuple[Growable, Growable]] = {}
        # Per kind of code: (slots when made, each slot's set, the distinct sets): ``infer``'s.
        self.code_sets: dict[str, tuple[int, npt.NDArray[np.int64], npt.NDArray[np.int64]]] = {}
        self.dead = 0
        # (key, distinct-set index per slot, a slot per set): ``scoring.grid_scores``'s.
        # The key is (slots covered, the time expiry was judged at); the ids find a set by
        # its bytes.
        self.distinct: (
            tuple[tuple[int, int], npt.NDArray[np.int64], npt.NDArray[np.int64]] | None
        ) = None
        self.distinct_ids: KeyIds | None = None
        # Slots the table covers whose coded columns changed in place since (a vector or
        # inferred codes arrived, removed, expired): ``scoring._distinct`` finds their sets
        # again.
        self.rekey: set[int] = set()
        self.orphans = 0  # sets of the table left without a member since it was made

    def __len__(self) -> int:
        return len(self.slot_of)

    def add(
        self,
        feats: Features,
        vector: Quantised | None,
        key: bytes | None = None,
        pending: bool = False,
    ) -> int:
        """Append ``feats`` (the caller removed any older version first); return its slot.
        ``key``: its text's ``text_key`` when ``feats`` has no text (a compaction's copy);
        ``pending``: it waits for its vector."""
        slot = self.slot_of.add(feats.ref)
        for space in self.spaces:
            weights = getattr(feats, "words" if space == "text" else space)
            c, v = self.vocabs[space].add(weights)
            self.sparse[space].append(c, v)
            if space == "text" and kind_has_surface(self.kind):
                # The request's spelling of each stem, in the row's column order ("" when
                # it is the stem itself); strings shared with every listing using them.
                terms = self.vocabs[space].terms
                ids = self._spelling_ids
                spelled = np.empty(len(c), dtype=np.int32)
                for i, col in enumerate(c.tolist()):
                    spelling = feats.surface.get(terms[col], "")
                    found = ids.get(spelling)
                    if found is None:
                        found = ids[spelling] = len(self.spellings)
                        self.spellings.append(spelling)
                    spelled[i] = found
                if len(self.spellings) > SPELLING_CODES and self.spelled.dtype == np.uint16:
                    self.spelled.cast(np.int32)
                self.spelled.extend(spelled)
        self.versions.append(feats.version)
        self.titles.append(feats.title)
        self.texts.append(feats.text if self.keep_text else "")
        if self.semantic:
            key = key if key is not None else text_key(self.kind, feats.text)
            self.keys.append(np.frombuffer(key, dtype=np.uint8))
        self.pending.append(pending and vector is None)
        target_no = self._target_no.get(feats.targets)
        if target_no is None:
            target_no = self._target_no[feats.targets] = len(self._target_sets)
            self._target_sets.append(feats.targets)
        self.targets.append(target_no)
        self.alive.append(True)
        self.expires.append(NEVER if feats.expires is None else feats.expires)
        self.trl.append(-1 if feats.trl is None else max(-1, min(feats.trl, 100)))
        self.trl_min.append(-1 if feats.trl_min is None else max(-1, min(feats.trl_min, 100)))
        self.pmask.append(_mask(feats.partnership, _PARTNER_BIT))
        self.tmask.append(self.nodes.mask(feats.targets))
        self.obit.append(self.nodes.bit(feats.ref[0]))
        self.smask.append(_mask(feats.sectors, _SECTOR_BIT))
        self.ipc.append(_codes(feats.ipc, MAX_IPC))
        self.isic.append(_codes(feats.isic, MAX_ISIC))
        if vector is not None and self.dense is None:
            self.dense = Vectors(len(vector.codes))
            self.dense.extend_empty(slot)
        if self.dense is not None:
            self.dense.append(vector)
        self.has_dense.append(vector is not None)
        self.has_concepts.append(bool(feats.concepts))
        for codes, probs in self._inferred.values():
            codes.append(0)
            probs.append(0.0)
        return slot

    def set_vector(self, slot: int, vector: Quantised) -> None:
        """Give the listing at ``slot`` its embedding (one encoded after it was added)."""
        if self.dense is None:
            self.dense = Vectors(len(vector.codes))
            self.dense.extend_empty(len(self.features))
        self.dense.set(slot, vector)
        self.has_dense.set(slot, True)
        self.pending.set(slot, False)
        self.coded_changed([slot])

    def key(self, slot: int) -> bytes:
        """The ``text_key`` of the text of the listing at ``slot`` (``semantic`` only)."""
        return bytes(self.keys.view[slot].tobytes())

    def pending_slots(self) -> npt.NDArray[np.int64]:
        """The live slots waiting for their vector, oldest first."""
        return np.flatnonzero(self.pending.view).astype(np.int64)

    def set_inferred(
        self,
        slots: npt.NDArray[np.int64],
        inferred: dict[str, tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]],
    ) -> None:
        """Store the codes inferred for ``slots`` (``infer.CodeModel.infer``), each kind only
        where the listing names no code of that kind itself."""
        for kind, (codes, probs) in inferred.items():
            if kind == "sector":
                own = self.smask.view[slots] != 0
            else:
                column = self.ipc if kind == "ipc" else self.isic
                own = column.view[slots, 0] > 0
            if kind not in self._inferred:
                size = len(self.features)
                held = (Growable(np.int32, width=INFER_TOP), Growable(np.float32, width=INFER_TOP))
                held[0].extend(np.zeros((size, INFER_TOP), dtype=np.int32))
                held[1].extend(np.zeros((size, INFER_TOP), dtype=np.float32))
                self._inferred[kind] = held
            column_codes, column_probs = self._inferred[kind]
            column_codes.view[slots] = np.where(own[:, None], 0, codes)
            column_probs.view[slots] = np.where(own[:, None], 0.0, probs)
        self.coded_changed(slots)

    def coded_changed(self, slots: Sequence[int] | npt.NDArray[np.int64]) -> None:
        """The coded columns of ``slots`` changed in place: the ones the table of distinct
        sets covers are put in their sets again when it is next read (new slots are added
        to it then anyway); more than REKEY_SHARE of it at once, and it is made again."""
        if self.distinct is None:
            return
        covered = self.distinct[0][0]
        held = np.asarray(slots, dtype=np.int64)
        held = held[held < covered]
        bound = max(REKEY_MIN, covered * REKEY_SHARE)
        if len(held) <= bound:  # (every request's inferred codes at a refit: not one by one)
            self.rekey.update(held.tolist())
        if len(held) > bound or len(self.rekey) > bound:
            self.distinct = None
            self.rekey.clear()

    def has_inferred(self, kind: str) -> npt.NDArray[np.bool_]:
        """Per slot: whether codes of ``kind`` were inferred for it."""
        held = self._inferred.get(kind)
        if held is None:
            return np.zeros(len(self.features), dtype=np.bool_)
        out: npt.NDArray[np.bool_] = held[1].view[:, 0] > 0
        return out

    def inferred(
        self, kind: str, slots: npt.NDArray[np.int64]
    ) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
        """The codes of ``kind`` inferred for ``slots`` and their probabilities (0 pads)."""
        held = self._inferred.get(kind)
        if held is None:
            shape = (len(slots), INFER_TOP)
            return np.zeros(shape, dtype=np.int64), np.zeros(shape, dtype=np.float32)
        return held[0].view[slots].astype(np.int64), held[1].view[slots]

    def feature(self, slot: int) -> Features | None:
        """The listing at ``slot`` (None if dead), without its terms."""
        if not self.alive.view[slot]:
            return None
        expires = int(self.expires.view[slot])
        trl, trl_min = int(self.trl.view[slot]), int(self.trl_min.view[slot])
        pmask = int(self.pmask.view[slot])
        ipc, isic = self.codes(slot)
        return Features(
            ref=self.slot_of.ref(slot),
            kind=self.kind,
            version=int(self.versions.view[slot]),
            expires=None if expires == NEVER else expires,
            title=self.titles[slot],
            words=_EMPTY,
            concepts=_EMPTY,
            ngrams=_EMPTY,
            text=self.texts[slot],
            ipc=ipc,
            isic=isic,
            sectors=_unmask(int(self.smask.view[slot]), _SECTOR_OF_BIT),
            trl=None if trl < 0 else trl,
            trl_min=None if trl_min < 0 else trl_min,
            partnership=_unmask(pmask, _PARTNER_OF_BIT) if pmask else None,
            targets=self._target_sets[int(self.targets.view[slot])],
        )

    def codes(self, slot: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """The IPC and ISIC codes of the listing at ``slot``."""
        return (
            tuple(c for c in self.ipc.view[slot].tolist() if c),
            tuple(c for c in self.isic.view[slot].tolist() if c),
        )

    def version(self, ref: Ref) -> int | None:
        """The version of ``ref`` held here, if it is."""
        slot = self.slot_of.find(ref)
        return None if slot is None else int(self.versions.view[slot])

    def kill(self, ref: Ref) -> int | None:
        """Remove ``ref`` from every later score at once; its df leaves the vocabularies.
        The slot it had, or None when it is not held here."""
        slot = self.slot_of.drop(ref)
        if slot is None:
            return None
        self.alive.set(slot, False)
        self.pending.set(slot, False)
        for space in self.spaces:
            self.vocabs[space].remove(self.sparse[space].row(slot)[0])
        self.dead += 1
        self.coded_changed([slot])
        return slot

    def surface(self, slot: int) -> list[str]:
        """The spelling of each term of the text row of ``slot``, in the row's order ("" when
        it is the stem itself); [] for a kind that keeps none."""
        if not kind_has_surface(self.kind):
            return []
        start, stop = self.sparse["text"].span(slot)
        spellings = self.spellings
        return [spellings[i] for i in self.spelled.view[start:stop].tolist()]

    def live_features(self) -> list[Features]:
        return [f for f in self.features if f is not None]

    def live_slots(self) -> npt.NDArray[np.int64]:
        return np.flatnonzero(self.alive.view).astype(np.int64)
