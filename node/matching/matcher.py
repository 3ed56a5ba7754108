"""The hub's matcher: requests against technology offers and experts, kept incrementally.

``Matcher`` holds the summaries the hub received (the ``listing`` member of each signed
summary, with its owner node) and answers two questions: what matches this listing
(``matches_for``) and what are the best candidates of every request (``top_matches``).
A listing is analysed once when it arrives (terms, concepts, codes, and its embedding
when a sentence-embedding encoder is configured); ``remove`` takes it out of every match
list at once. Top lists are computed in bulk once and then kept up to date listing by
listing: a new candidate is scored against every request and enters the lists it beats,
a removed one leaves them, and a list left short is refilled from scratch when read.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import numpy.typing as npt

from node.matching.bulk import MANY_PAIRS, exact_top, many_vs_all, one_vs_all, rescore, top_indices
from node.matching.calibration import DEFAULT_SCALE
from node.matching.concepts import ConceptLexicon, default_lexicon
from node.matching.embedding import Embedder, resolve
from node.matching.evidence import shared_codes, shared_concepts, shared_terms
from node.matching.features import CANDIDATE_KINDS, Features, Ref, extract, listing_text
from node.matching.index import FloatArray, IntArray, Vocabulary
from node.matching.infer import CodeModel, candidate_codes, code_label
from node.matching.ivf import shortlist_top
from node.matching.match import Match
from node.matching.scoring import Scored, inferred_kinds
from node.matching.semantic import Encoder
from node.matching.store import SEMANTIC_SPACES, SPACES, KindStore, NodeBits
from node.matching.vectors import KEY_DTYPE, HeldVectors, Quantised, quantise, text_key
from node.services.heap import trim_heap

logger = logging.getLogger(__name__)

EXACT_PAIRS = 4_000_000
INFER_BLOCK = 20_000  # requests whose codes are inferred at once
REFIT_SHARE = 0.02  # share of the candidates changed after which the code model is refitted
TABLE_MARGIN = 10
COMPACT_DEAD = 0.3
DEAD_TERMS_MIN = 200_000  # and over half of a space's terms: then compact
# Reads the listings ``refs`` as they are held now (the views the matcher was given; the
# hub's worker reads them from the database), those still held, by ref.
TextSource = Callable[[Sequence[Ref]], Mapping[Ref, Mapping[str, Any]]]


class _Table:
    """Cached top lists of one candidate kind: rows are request slots (int32 candidate
    slots: 8 bytes a request and a place, 13 MB at 80,000 requests and two kinds, were
    int64), rows past the requests held empty."""

    def __init__(self, width: int) -> None:
        self.width = width
        self.slots = np.full((0, width), -1, dtype=np.int32)
        self.scores = np.full((0, width), -np.inf, dtype=np.float32)
        self.dirty: set[int] = set()
        self.epoch = -1

    def ensure_rows(self, n: int) -> None:
        """At least ``n`` rows, grown by a quarter at a time: grown by the one row a new
        request needs, every new request copied the whole table (19 MB at 80,000)."""
        if n > len(self.slots):
            extra = max(n, len(self.slots) + len(self.slots) // 4) - len(self.slots)
            self.slots = np.vstack([self.slots, np.full((extra, self.width), -1, np.int32)])
            self.scores = np.vstack(
                [self.scores, np.full((extra, self.width), -np.inf, np.float32)]
            )


class Matcher:
    """Match technology requests with offers and experts (DESIGN 9).

    ``now_ms`` fixes the time that expiry is judged against; None means the wall clock at
    each call. ``encoder`` adds the semantic component (see ``node.matching.semantic``):
    ``"default"`` loads the installed multilingual model (``semantic.load_default``), an
    Encoder is used as given, None keeps the matcher lexical. ``semantic`` tells which
    (enabled, model, and the reason when it is off: /hub/status shows it). Top lists are
    computed exactly while requests x candidates stays under ``exact_pairs``, and by a
    shortlist beyond (``ivf``).

    ``defer_encoding``: listings are added without their embedding, matched lexically at
    once, and ``encode_pending`` gives them their vectors later, a batch at a time (the
    hub's worker does it between passes: a sentence encoder takes tens of milliseconds a
    listing, lexical analysis well under one). A pair is scored with the semantic
    component only once both listings have their vector.

    ``text_source``: where the text of a listing is read back when it is needed (to
    encode it later, for the sentences that explain a match), so that the matcher does
    not keep every listing's text (~740 bytes a listing); without it, the stores keep the
    texts. A text read back is used only if it is still the one the matcher holds (its
    ``text_key``): a listing changed since is taken in again, with its new text.

    ``ngrams``: whether to hold the character n-grams of titles and keywords as a space of
    their own; by default only when matching lexically (``store.SEMANTIC_SPACES``).
    """

    def __init__(
        self,
        now_ms: int | None = None,
        *,
        encoder: Encoder | str | None = None,
        lexicon: ConceptLexicon | None = None,
        exact_pairs: int = EXACT_PAIRS,
        defer_encoding: bool = False,
        text_source: TextSource | None = None,
        ngrams: bool | None = None,
    ) -> None:
        self._now_ms = now_ms
        self.encoder, self.semantic = resolve(encoder)
        self._embedder = Embedder(self.encoder) if self.encoder is not None else None
        self.defer_encoding = defer_encoding and self._embedder is not None
        self.text_source = text_source
        self._sem_scale = self._embedder.scale if self._embedder else DEFAULT_SCALE
        self.lexicon = lexicon or default_lexicon()
        self.exact_pairs = exact_pairs
        # Character n-grams only when matching lexically, unless ``ngrams`` says
        # (``store.SEMANTIC_SPACES``).
        with_ngrams = self._embedder is None if ngrams is None else ngrams
        self.spaces = SPACES if with_ngrams else SEMANTIC_SPACES
        self.vocabs = {space: Vocabulary() for space in self.spaces}
        self._nodes = NodeBits()
        self.stores = {kind: self._store(kind) for kind in ("request", *CANDIDATE_KINDS)}
        self._tables: dict[str, _Table] = {}
        self._codes: CodeModel | None = None  # infers the codes of requests without any
        self._candidate_changes = 0  # candidates added or removed since it was fitted

    def _store(self, kind: str) -> KindStore:
        store = KindStore(kind, self.vocabs, self._nodes)
        store.sem_scale = self._sem_scale
        store.semantic = self._embedder is not None
        store.keep_text = store.semantic and self.text_source is None
        return store

    # --- time and size -------------------------------------------------------------------
    def now(self) -> int:
        return self._now_ms if self._now_ms is not None else int(time.time() * 1000)

    def __len__(self) -> int:
        return sum(len(store) for store in self.stores.values())

    def __contains__(self, ref: object) -> bool:
        return self._kind(ref) is not None

    def _kind(self, ref: object) -> str | None:
        """The kind of the store that holds ``ref`` (a listing is in one store at most:
        no map of its own, which cost ~150 bytes a listing)."""
        for kind, store in self.stores.items():
            if ref in store.slot_of:
                return kind
        return None

    def _version(self, ref: Ref) -> int | None:
        for store in self.stores.values():
            version = store.version(ref)
            if version is not None:
                return version
        return None

    def features(self, owner: str, listing_id: str) -> Features | None:
        kind = self._kind((owner, listing_id))
        if kind is None:
            return None
        store = self.stores[kind]
        return store.features[store.slot_of[(owner, listing_id)]]

    # --- changes ---------------------------------------------------------------------------
    def upsert(self, owner: str, view: Mapping[str, Any]) -> bool:
        """Add or replace one listing; False when it is not matched (another category) or is
        older than the version held."""
        return self.upsert_many([(owner, view)]) == 1

    def upsert_many(self, items: Iterable[tuple[str, Mapping[str, Any]]]) -> int:
        """Add or replace many listings (embeddings computed in one batch); returns how many
        were taken."""
        newest: dict[Ref, Features] = {}
        for owner, view in items:
            feats = extract(owner, view, self.lexicon, ngrams="ngrams" in self.spaces)
            if feats is None:
                continue
            newer = newest.get(feats.ref)
            held = newer.version if newer is not None else self._version(feats.ref)
            if held is not None and held > feats.version:
                continue
            newest[feats.ref] = feats
        batch = list(newest.values())
        # A new version whose text is the held one's (a policy, a date or a code changed)
        # keeps its vector: a member's policy change re-sends every listing it shares.
        vectors: list[Quantised | None] = [self._held_vector(f) for f in batch]
        embedder = None if self.defer_encoding else self._embedder
        if embedder is not None and batch:
            for is_request in (True, False):
                rows = [
                    i
                    for i, f in enumerate(batch)
                    if (f.kind == "request") == is_request and vectors[i] is None
                ]
                if rows:
                    encoded = embedder.encode([batch[i].text for i in rows], is_request)
                    for j, i in enumerate(rows):
                        vectors[i] = quantise(encoded[j])
        for feats, vector in zip(batch, vectors, strict=True):
            self._remove(feats.ref)
            store = self.stores[feats.kind]
            slot = store.add(feats, vector, pending=self.defer_encoding)
            if feats.kind != "request":
                self._candidate_changes += 1
            elif self._codes is not None:
                self._infer(np.array([slot], dtype=np.int64))
            self._after_add(feats.kind, slot)
        self._maybe_compact()
        return len(batch)

    def _held_vector(self, feats: Features) -> Quantised | None:
        """The vector of the version held of ``feats.ref`` when it is of the same kind and
        its text is the same (by the stores' ``text_key``), else None."""
        store = self.stores.get(feats.kind)
        if self._embedder is None or store is None or store.dense is None:
            return None
        slot = store.slot_of.find(feats.ref)
        if slot is None or not store.has_dense.view[slot]:
            return None
        if store.key(slot) != text_key(feats.kind, feats.text):
            return None
        return store.dense.row(slot)

    def pending_count(self) -> int:
        """How many listings wait for their vector (``defer_encoding``)."""
        return sum(int(np.count_nonzero(store.pending.view)) for store in self.stores.values())

    def pending_refs(self) -> list[Ref]:
        """The listings waiting for their vector, by kind, oldest first."""
        return [
            store.slot_of.ref(int(slot))
            for store in self.stores.values()
            for slot in store.pending_slots()
        ]

    def _texts(self, kind: str, slots: Sequence[int]) -> list[str | None]:
        """The texts of the listings at ``slots`` of ``kind``: the store's own, or read back
        from ``text_source`` (None where it no longer has the text the matcher holds)."""
        store = self.stores[kind]
        if self.text_source is None:
            return [store.texts[slot] for slot in slots]
        refs = [store.slot_of.ref(slot) for slot in slots]
        views = self.text_source(refs)
        out: list[str | None] = []
        for ref, slot in zip(refs, slots, strict=True):
            view = views.get(ref)
            text = None if view is None else listing_text(view)
            ok = text is not None and text_key(kind, text) == store.key(slot)
            out.append(text if ok else None)
        return out

    def encode_pending(self, limit: int) -> list[Ref]:
        """Encode up to ``limit`` of the listings held without their vector (the oldest of
        each kind, the kinds in turn) and re-rank them with it; the listings that got their
        vector. One whose text changed at its source since it was taken in is left to its
        new version (its text is encoded when that arrives)."""
        embedder = self._embedder
        if embedder is None:
            return []
        queues = {
            kind: store.pending_slots()[:limit].tolist() for kind, store in self.stores.items()
        }
        turns = [
            (kind, slot)
            for row in itertools.zip_longest(*queues.values())
            for kind, slot in zip(queues, row, strict=True)
            if slot is not None
        ]
        picked: dict[str, list[int]] = {}
        for kind, slot in turns[:limit]:
            picked.setdefault(kind, []).append(slot)
        done: list[Ref] = []
        # An encoder that fails (or a worker that stops) leaves the rest pending: the next
        # pass tries again instead of leaving them lexical.
        for kind, slots in picked.items():
            store = self.stores[kind]
            found: list[tuple[int, str]] = []
            for slot, text in zip(slots, self._texts(kind, slots), strict=True):
                if text is None:
                    store.pending.set(slot, False)
                else:
                    found.append((slot, text))
            if not found:
                continue
            vectors = embedder.encode([text for _, text in found], kind == "request")
            for (slot, _), vector in zip(found, vectors, strict=True):
                ref = store.slot_of.ref(slot)
                self._set_vector(ref, kind, quantise(vector))
                done.append(ref)
        return done

    def held_vectors(self) -> list[HeldVectors]:
        """Every vector held, for ``reuse_vectors`` in a later process: per kind, a key per
        slot (``text_key`` of its text; zero bytes where it has none or is dead) and the
        store's own codes and scales (views, not copies: 77 MB at 200,000 listings)."""
        out: list[HeldVectors] = []
        for store in self.stores.values():
            if store.dense is None:
                continue
            keys = np.zeros(len(store.dense), dtype=KEY_DTYPE)
            present = np.flatnonzero(store.has_dense.view & store.alive.view)
            keys[present] = store.keys.view[present].view(KEY_DTYPE).ravel()
            out.append((keys, store.dense.codes.view, store.dense.scales.view))
        return out

    def reuse_vectors(self, held: Sequence[HeldVectors]) -> int:
        """Give the listings waiting for their vector the one ``held_vectors`` kept for the
        same text (an earlier process's, by the same model); how many got one."""
        if self._embedder is None or not held or not self.pending_count():
            return 0
        keys = np.concatenate([part[0] for part in held])
        where = np.concatenate(
            [
                np.stack([np.full(len(p[0]), i), np.arange(len(p[0]))], axis=1)
                for i, p in enumerate(held)
            ]
        )
        real = keys != np.zeros(1, dtype=KEY_DTYPE)[0]
        keys, where = keys[real], where[real]
        order = np.argsort(keys, kind="stable")
        keys, where = keys[order], where[order]
        found = 0
        for kind, store in self.stores.items():
            slots = store.pending_slots()
            if not len(keys) or not len(slots):
                continue
            wanted = store.keys.view[slots].view(KEY_DTYPE).ravel()
            at = np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)
            hit = keys[at] == wanted
            for slot, (part, row) in zip(slots[hit].tolist(), where[at[hit]].tolist(), strict=True):
                _, codes, scales = held[part]
                vector = Quantised(codes[row].copy(), np.float32(scales[row]))
                self._set_vector(store.slot_of.ref(slot), kind, vector)
                found += 1
        return found

    def _set_vector(self, ref: Ref, kind: str, vector: Quantised) -> None:
        """``ref`` (held in the store of ``kind``) gets its vector: its places in the
        cached top lists are found again with it, and its inferred codes too."""
        store = self.stores[kind]
        slot = store.slot_of[ref]
        store.set_vector(slot, vector)
        if kind == "request":
            if self._codes is not None:
                self._infer(np.array([slot], dtype=np.int64))
            now = self.now()
            for cand_kind, table in self._tables.items():
                if slot < len(table.slots):  # every score of its row changed: refilled now
                    self._refill(table, cand_kind, slot, now)
                    table.dirty.discard(slot)
            return
        self._candidate_changes += 1
        self._unlist(kind, slot)
        self._after_add(kind, slot)

    def remove(self, owner: str, listing_id: str) -> bool:
        """Take a listing out (retracted, expired, no longer shared); it leaves every match
        list at once. False when it was not held."""
        removed = self._remove((owner, listing_id))
        self._maybe_compact()
        return removed

    def _remove(self, ref: Ref) -> bool:
        for kind in self.stores:
            slot = self.stores[kind].kill(ref)
            if slot is not None:
                break
        else:
            return False
        if kind != "request":
            self._candidate_changes += 1
        if kind == "request":
            for table in self._tables.values():
                if slot < len(table.slots):
                    table.slots[slot] = -1
                    table.scores[slot] = -np.inf
                table.dirty.discard(slot)
        else:
            self._unlist(kind, slot)
        return True

    def _unlist(self, kind: str, slot: int) -> None:
        """The candidate at ``slot`` leaves the cached top lists; the lists it left are
        refilled when read."""
        table = self._tables.get(kind)
        if table is None:
            return
        hit = table.slots == slot
        rows = np.flatnonzero(hit.any(axis=1))
        table.scores[hit] = -np.inf
        table.slots[hit] = -1
        table.dirty.update(int(r) for r in rows)

    def _after_add(self, kind: str, slot: int) -> None:
        if not self._tables:
            return
        requests = self.stores["request"]
        if kind == "request":
            for table in self._tables.values():
                table.ensure_rows(len(requests.features))
                table.dirty.add(slot)
            return
        held = self._tables.get(kind)
        if held is None:
            return
        table = held
        table.ensure_rows(len(requests.features))
        floor = table.scores.min(axis=1)
        req_slots, scored = one_vs_all(self.stores[kind], slot, requests, self.now(), floor=floor)
        score = np.where(scored.allowed, scored.score, -np.inf)
        worst = table.scores[req_slots].argmin(axis=1)
        beats = score > table.scores[req_slots, worst]
        rows, cols = req_slots[beats], worst[beats]
        table.slots[rows, cols] = slot
        table.scores[rows, cols] = score[beats]

    def release_caches(self) -> None:
        """Drop every store's weighed matrices, the one-against-all postings included
        (rebuilt when next needed: ~0.7 s at 200,000 listings), and what the model
        makes again (e5's scratch and packed weights). Kept between passes they were
        ~200 MB at 200,000 listings, and a bulk ranking's own view stacked on them."""
        for store in self.stores.values():
            for rows in store.sparse.values():
                rows.release(postings=True)
        if self._embedder is not None:
            self._embedder.release()  # the numpy e5's scratch and packed weights: 22 MB

    def _maybe_compact(self) -> None:
        for store in self.stores.values():
            if store.dead > 1000 and store.dead > COMPACT_DEAD * len(store.features):
                self.compact()
                return
        # Terms of removed listings: a member publishing and withdrawing listings of fresh
        # words (random CJK text) left 10.6 million of them, 1.8 GB, in a hub whose dead
        # slots were too few to compact.
        for vocab in self.vocabs.values():
            if vocab.dead_terms > DEAD_TERMS_MIN and 2 * vocab.dead_terms > len(vocab.terms):
                self.compact()
                return

    def compact(self) -> None:
        """Rebuild the stores without dead slots (and drop cached top lists)."""
        old = self.stores
        self.vocabs = {space: Vocabulary() for space in self.spaces}
        self.stores = {kind: self._store(kind) for kind in old}
        for kind, store in old.items():
            for slot, feats in enumerate(store.features):
                if feats is None:
                    continue
                vector = None
                if store.dense is not None and store.has_dense.view[slot]:
                    vector = store.dense.row(slot)
                key = store.key(slot) if store.semantic else None
                pending = bool(store.pending.view[slot])
                self.stores[kind].add(_unpacked(store, slot, feats), vector, key, pending)
        self._tables.clear()
        self._codes = None

    # --- inferred codes ---------------------------------------------------------------------
    def code_model(self) -> CodeModel:
        """The model that infers the codes of requests without any (``infer``), fitted on
        the candidates held; fitted again, and every request inferred again, once more
        than ``REFIT_SHARE`` of the candidates it learnt from were added or removed."""
        held = self._codes
        if held is None or self._candidate_changes > REFIT_SHARE * held.size:
            stores = [self.stores[kind] for kind in CANDIDATE_KINDS]
            held = self._codes = CodeModel(stores, inferred_kinds())
            self._candidate_changes = 0
            self._infer(self.stores["request"].live_slots())
            # The fit's and the inference's temporaries, freed, stayed in the heap under
            # the ranking that follows (~30 MB of it at 200,000 listings).
            trim_heap()
        return held

    def _infer(self, slots: IntArray) -> None:
        assert self._codes is not None
        requests = self.stores["request"]
        for start in range(0, len(slots), INFER_BLOCK):
            part = slots[start : start + INFER_BLOCK]
            requests.set_inferred(part, self._codes.infer(requests, part))

    # --- queries ----------------------------------------------------------------------------
    def matches_for(
        self, owner: str, listing_id: str, k: int = 10, kinds: Collection[str] = CANDIDATE_KINDS
    ) -> list[Match]:
        """For a request: its best candidates. For an offer or expert: the requests it
        matches best. Empty when the listing is unknown or expired."""
        return self.matches_for_many([(owner, listing_id)], k, kinds)[(owner, listing_id)]

    def matches_for_many(
        self,
        refs: Iterable[Ref],
        k: int = 10,
        kinds: Collection[str] = CANDIDATE_KINDS,
        *,
        explain: bool = True,
    ) -> dict[Ref, list[Match]]:
        """``matches_for`` of each of ``refs``, found together: one sparse product per
        block of listings instead of one per listing (the re-match's notify path). With
        ``explain=False`` the shared terms, concepts and codes are left out (``explain``
        adds them to the matches that need them), and so is the semantic evidence."""
        now = self.now()
        self.code_model()
        out: dict[Ref, list[Match]] = {}
        by_kind: dict[str, list[Ref]] = {}
        for ref in refs:
            kind = self._kind(ref)
            out[ref] = []
            if kind is None or ref in by_kind.get(kind, ()):
                continue
            own = self.stores[kind]
            if own.expires.view[own.slot_of[ref]] > now:
                by_kind.setdefault(kind, []).append(ref)
        for kind, mine in by_kind.items():
            own = self.stores[kind]
            own_slots = np.array([own.slot_of[ref] for ref in mine], dtype=np.int64)
            found: list[list[tuple[float, str, int, int, Scored]]] = [[] for _ in mine]
            others = (
                [k_ for k_ in kinds if k_ in CANDIDATE_KINDS] if kind == "request" else ["request"]
            )
            for other_kind in others:
                other = self.stores[other_kind]
                block = max(1, MANY_PAIRS // max(1, len(other)))
                for start in range(0, len(mine), block):
                    rows, scored = many_vs_all(own, own_slots[start : start + block], other, now, k)
                    if scored is None:
                        continue
                    for i, (slots, scores, idx) in enumerate(rows):
                        found[start + i].extend(
                            (float(v), other_kind, int(s), int(j), scored)
                            for s, v, j in zip(slots, scores, idx, strict=True)
                        )
            # The semantic evidence encodes the listing's sentences (with e5, ~20 ms each):
            # only for explained matches, never for the notices' (they do not tell it).
            slots = own_slots.tolist()
            texts = self._evidence_texts(kind, slots) if explain else [None] * len(slots)
            for ref, slot, entries, text in zip(mine, own_slots, found, texts, strict=True):
                out[ref] = self._explained(kind, int(slot), entries, k, explain, text)
        return out

    def _evidence_texts(self, kind: str, slots: list[int]) -> list[str | None]:
        """The texts of the listings at ``slots`` that have a vector (their semantic
        evidence is picked from their sentences), read together; None for the others."""
        store = self.stores[kind]
        if store.dense is None:
            return [None] * len(slots)
        with_vector = [slot for slot in slots if store.has_dense.view[slot]]
        texts = dict(zip(with_vector, self._texts(kind, with_vector), strict=True))
        return [texts.get(slot) for slot in slots]

    def _explained(
        self,
        kind: str,
        slot: int,
        found: list[tuple[float, str, int, int, Scored]],
        k: int,
        explain: bool = True,
        text: str | None = None,
    ) -> list[Match]:
        """The best ``k`` of ``found`` (score, other kind, other slot, index into its
        Scored) for the listing at ``slot``, as explained matches; with the sentence of
        ``text`` (the listing's) nearest to each other listing when both have a vector."""
        found.sort(key=lambda f: -f[0])
        out: list[Match] = []
        for value, other_kind, other_slot, idx, scored in found[:k]:
            if kind == "request":
                out.append(self._match(slot, other_kind, other_slot, value, scored, idx, explain))
            else:
                out.append(self._match(other_slot, kind, slot, value, scored, idx, explain))
        if text is not None and out:
            counterparts = [
                self._vector(m.candidate if kind == "request" else m.request) for m in out
            ]
            assert self._embedder is not None
            out = self._embedder.with_evidence(text, kind, out, counterparts)
        return out

    def _vector(self, ref: Ref) -> FloatArray | None:
        kind = self._kind(ref)
        assert kind is not None
        store = self.stores[kind]
        slot = store.slot_of[ref]
        if store.dense is None or not store.has_dense.view[slot]:
            return None
        out: FloatArray = store.dense.unit(np.array([slot], dtype=np.int64))[0]
        return out

    def top_matches(
        self, k: int = 10, kinds: Collection[str] = CANDIDATE_KINDS
    ) -> dict[Ref, list[Match]]:
        """The best ``k`` candidates of every live, unexpired request that has any."""
        slots, scores, cand_kinds = self.top_pairs(k, kinds)
        rows = self._as_matches(slots, scores, cand_kinds, np.isfinite(scores))
        out: dict[Ref, list[Match]] = {}
        for row in sorted(rows):
            out[rows[row][0].request] = sorted(rows[row], key=lambda m: -m.score)
        return out

    def best_matches(
        self, limit: int, k: int = 10, kinds: Collection[str] = CANDIDATE_KINDS
    ) -> list[Match]:
        """The best ``limit`` pairs of all the top ``k`` lists (``top_matches``), best
        first, ties by request: only those pairs (and the ties at the cut) are explained,
        so that memory follows ``limit``, not the number of requests held."""
        if limit <= 0:
            return []
        slots, scores, cand_kinds = self.top_pairs(k, kinds)
        keep = np.isfinite(scores)
        finite = scores[keep]
        if len(finite) > limit:
            cut = np.partition(finite, len(finite) - limit)[len(finite) - limit]
            # Match scores are rounded to 4 places: keep whatever may round to the cut.
            keep &= scores >= cut - 1e-4
        rows = self._as_matches(slots, scores, cand_kinds, keep)
        found = [m for matches in rows.values() for m in matches]
        return sorted(found, key=lambda m: (-m.score, m.request))[:limit]

    def _as_matches(
        self,
        slots: IntArray,
        scores: FloatArray,
        cand_kinds: npt.NDArray[np.int8],
        keep: npt.NDArray[np.bool_],
    ) -> dict[int, list[Match]]:
        """The pairs of ``top_pairs`` where ``keep`` holds, as matches, by request row."""
        requests = self.stores["request"]
        live = self._live_requests()
        picked: dict[str, list[tuple[int, int, int, float]]] = {}
        for row, j in zip(*np.nonzero(keep), strict=True):
            entry = (int(row), int(live[row]), int(slots[row, j]), float(scores[row, j]))
            picked.setdefault(CANDIDATE_KINDS[cand_kinds[row, j]], []).append(entry)
        rows: dict[int, list[Match]] = {}
        for kind, entries in picked.items():
            ri = np.array([e[1] for e in entries], dtype=np.int64)
            ci = np.array([e[2] for e in entries], dtype=np.int64)
            _, scored = rescore(requests, ri, self.stores[kind], ci, self.now())
            for idx, (row, req_slot, cand_slot, score) in enumerate(entries):
                match = self._match(req_slot, kind, cand_slot, score, scored, idx)
                rows.setdefault(row, []).append(match)
        return rows

    def top_pairs(
        self, k: int = 10, kinds: Collection[str] = CANDIDATE_KINDS
    ) -> tuple[IntArray, FloatArray, npt.NDArray[np.int8]]:
        """The bulk result without explanations: for each live request (in slot order),
        candidate slots, scores (-inf past the end) and candidate kinds (indices into
        ``CANDIDATE_KINDS``: a string per pair was ~45 MB at 76,000 requests)."""
        now = self.now()
        self.code_model()
        live = self._live_requests()
        per_kind: list[tuple[str, npt.NDArray[np.int32], FloatArray]] = []
        for kind in (k_ for k_ in CANDIDATE_KINDS if k_ in kinds):
            table = self._table(kind, k, now)
            # A row's best k may be anywhere in it: a candidate added since the row was
            # filled took the place of the row's worst entry (``_after_add``).
            scores = table.scores[live]
            best = np.argsort(-scores, axis=1, kind="stable")[:, :k]
            per_kind.append(
                (
                    kind,
                    np.take_along_axis(table.slots[live], best, axis=1),
                    np.take_along_axis(scores, best, axis=1),
                )
            )
        if not per_kind:
            empty = np.zeros((len(live), 0))
            return empty.astype(np.int64), empty.astype(np.float32), empty.astype(np.int8)
        all_slots = np.hstack([s for _, s, _ in per_kind])
        all_scores = np.hstack([s for _, _, s in per_kind])
        labels = np.concatenate(
            [np.full(k, CANDIDATE_KINDS.index(kind), dtype=np.int8) for kind, _, _ in per_kind]
        )
        order = np.argsort(-all_scores, axis=1, kind="stable")[:, :k]
        slots = np.take_along_axis(all_slots, order, axis=1).astype(np.int64)
        scores = np.take_along_axis(all_scores, order, axis=1)
        return slots, scores, labels[order]

    # --- internals ----------------------------------------------------------------------------
    def _live_requests(self) -> IntArray:
        requests = self.stores["request"]
        live = requests.alive.view & (requests.expires.view > self.now())
        return np.flatnonzero(live).astype(np.int64)

    def _table(self, kind: str, k: int, now: int) -> _Table:
        requests, cands = self.stores["request"], self.stores[kind]
        table = self._tables.get(kind)
        live = self._live_requests()
        small = len(live) * len(cands) <= self.exact_pairs
        epoch = self._epoch()
        if table is None or table.width < k or (small and table.epoch != epoch):
            # Small enough to recompute exactly whenever the idf moved; large tables are
            # kept incrementally (scores may then carry a slightly older idf).
            table = _Table(k + TABLE_MARGIN)
            table.epoch = epoch
            table.ensure_rows(len(requests.features))
            if small:
                top_slots, top_scores = exact_top(requests, live, cands, table.width, now)
            else:
                self.release_caches()  # its view and sketches, not beside the postings
                top_slots, top_scores = shortlist_top(requests, live, cands, table.width, now)
            table.slots[live], table.scores[live] = top_slots, top_scores
            self._tables[kind] = table
            return table
        table.ensure_rows(len(requests.features))
        if not cands.features:
            return table
        expired = (table.slots >= 0) & (cands.expires.view[np.maximum(table.slots, 0)] <= now)
        if expired.any():
            table.dirty.update(int(r) for r in np.flatnonzero(expired.any(axis=1)))
        short = (np.isfinite(table.scores).sum(axis=1) < k) & np.isin(
            np.arange(len(table.slots)), list(table.dirty)
        )
        for row in np.flatnonzero(short):
            self._refill(table, kind, int(row), now)
        table.dirty.clear()
        return table

    def _epoch(self) -> int:
        return sum(vocab.idf_epoch() for vocab in self.vocabs.values())

    def _refill(self, table: _Table, kind: str, row: int, now: int) -> None:
        requests = self.stores["request"]
        table.slots[row], table.scores[row] = -1, -np.inf
        if not requests.alive.view[row] or requests.expires.view[row] <= now:
            return
        slots, scored = one_vs_all(requests, row, self.stores[kind], now, k=table.width)
        score = np.where(scored.allowed, scored.score, -np.inf)
        best = top_indices(score, table.width)
        table.slots[row, : len(best)] = np.where(np.isfinite(score[best]), slots[best], -1)
        table.scores[row, : len(best)] = score[best]

    def _match(
        self,
        req_slot: int,
        kind: str,
        cand_slot: int,
        score: float,
        scored: Scored,
        idx: int,
        explain: bool = True,
    ) -> Match:
        cands = self.stores[kind]
        components = {
            name: round(float(value[idx]), 4)
            for name, (value, present) in scored.components.items()
            if present[idx]
        }
        match = Match(
            request=self.stores["request"].slot_of.ref(req_slot),
            candidate=cands.slot_of.ref(cand_slot),
            kind=kind,
            score=round(score, 4),
            components=components,
            candidate_title=cands.titles[cand_slot],
        )
        return self._shared(match, req_slot, kind, cand_slot) if explain else match

    def explain(self, match: Match) -> Match:
        """``match`` with what its two listings share (terms, concepts, codes), for a
        match found with ``explain=False``; unchanged if either listing is gone."""
        kind = self._kind(match.candidate)
        if kind is None or match.request not in self:
            return match
        req_slot = self.stores["request"].slot_of[match.request]
        return self._shared(match, req_slot, kind, self.stores[kind].slot_of[match.candidate])

    def _shared(self, match: Match, req_slot: int, kind: str, cand_slot: int) -> Match:
        requests, cands = self.stores["request"], self.stores[kind]
        return replace(
            match,
            shared_terms=shared_terms(
                requests.sparse["text"].row(req_slot),
                cands.sparse["text"].row(cand_slot),
                self.vocabs["text"],
                requests.surface(req_slot),
            ),
            shared_concepts=shared_concepts(
                requests.sparse["concepts"].row(req_slot),
                cands.sparse["concepts"].row(cand_slot),
                self.vocabs["concepts"],
            ),
            shared_codes=shared_codes(requests.codes(req_slot), cands.codes(cand_slot)),
            inferred_codes=self._inferred_codes(req_slot, kind, cand_slot),
        )

    def _inferred_codes(self, req_slot: int, kind: str, cand_slot: int) -> tuple[str, ...]:
        """The codes inferred for the request that the candidate carries, with their
        probabilities (what its inferred_* components are made of)."""
        requests, cands = self.stores["request"], self.stores[kind]
        out = []
        one = np.array([cand_slot], dtype=np.int64)
        for code_kind in inferred_kinds():
            theirs = set(candidate_codes(cands, code_kind, one)[0].tolist()) - {0}
            inferred = requests.inferred(code_kind, np.array([req_slot], dtype=np.int64))
            codes, probs = inferred[0][0].tolist(), inferred[1][0].tolist()
            for code, prob in zip(codes, probs, strict=True):
                if code and code in theirs:
                    out.append(f"{code_label(code_kind, code)} ({prob:.2f})")
        return tuple(out)


def _unpacked(store: KindStore, slot: int, feats: Features) -> Features:
    """The features of ``slot`` with its terms back from the store's rows (compaction)."""
    weights: dict[str, dict[str, float]] = {}
    for space in store.spaces:
        cols, vals = store.sparse[space].row(slot)
        terms = store.vocabs[space].terms
        weights[space] = {
            terms[c]: float(v) for c, v in zip(cols.tolist(), vals.tolist(), strict=True)
        }
    text_cols = store.sparse["text"].row(slot)[0].tolist()
    terms = store.vocabs["text"].terms
    spellings = store.surface(slot)  # [] where the kind keeps none
    surface = {
        terms[c]: spelled
        for c, spelled in zip(text_cols, spellings or [""] * len(text_cols), strict=True)
        if spelled
    }
    return replace(
        feats,
        words=weights["text"],
        concepts=weights["concepts"],
        ngrams=weights.get("ngrams", {}),
        surface=surface,
    )
