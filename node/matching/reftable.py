"""Listing keys ``(owner, id)`` kept in numpy columns, not as Python objects per listing.

A dict keyed by ``(owner, id)`` tuples costs ~190 bytes a listing (the tuple, the id's
string, the entry and an int), and the hub's matching worker kept three such maps of
everything it held: at 200,000 summaries, ~100 MB of small objects. Here a key is an
owner number (owners are a few dozen nodes) and the id's UTF-8 bytes in one growing
byte array; a key is found by its 64-bit hash, through sorted arrays for the bulk and a
dict for the keys added since they were last merged. Python's hash of strings is keyed
per process (SipHash), so no sender can know which ids share one; two that do anyway
are kept apart in a dict of their own (``_spill``), and every answer is checked against
the key it stands for.

``RefTable`` numbers keys in order of arrival (a kind store's slots); ``StampTable`` maps
each key to a short tuple of ints (the matching engine's versions of what it holds);
``KeyIds`` numbers distinct byte strings (the scorer's sets of coded columns).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import numpy.typing as npt

from node.matching.features import Ref
from node.matching.index import Growable

# Keys added before the sorted arrays are merged again (or 1/32 of them): the dict of
# recent keys is the only part with objects per key (two ints).
MERGE_MIN = 1_024


def _key(ref: Ref) -> int:
    """A key's 64-bit hash in this process."""
    return hash(ref)


def _utf8(text: str) -> bytes:
    # Lone surrogates are valid JSON escapes ("\ud800"): kept, not refused.
    return text.encode("utf-8", "surrogatepass")


def _sorted(
    hashes: npt.NDArray[np.int64], numbers: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Hashes in order, each with its number (equal hashes in the order given)."""
    order = np.argsort(hashes, kind="stable")
    return hashes[order], numbers[order]


class StringColumn:
    """Strings appended one by one and read back by number: UTF-8 in one byte array."""

    def __init__(self) -> None:
        self._bytes = Growable(np.uint8)
        self._ends = Growable(np.int64)

    def __len__(self) -> int:
        return self._ends.n

    def append(self, text: str) -> int:
        """Append ``text``; its number."""
        self._bytes.extend(np.frombuffer(_utf8(text), dtype=np.uint8))
        self._ends.append(self._bytes.n)
        return self._ends.n - 1

    def raw(self, index: int) -> bytes:
        ends = self._ends.view
        start = int(ends[index - 1]) if index else 0
        return self._bytes.view[start : int(ends[index])].tobytes()

    def __getitem__(self, index: int) -> str:
        return self.raw(index).decode("utf-8", "surrogatepass")


class RefTable:
    """Keys numbered 0, 1, 2... in order of ``add``; ``find`` gives a live key's number.

    Numbers are never reused: a dropped key's number stays dead (a kind store's dead
    slot). ``compact`` (``StampTable``'s) renumbers."""

    def __init__(self) -> None:
        self._owners: list[str] = []
        self._owner_no: dict[str, int] = {}
        self._owner = Growable(np.int32)
        self._ids = StringColumn()
        self._live = Growable(np.bool_)
        self._count = 0
        # hash -> number: sorted hashes with their numbers (-1: dropped since), the
        # hashes added since the last merge, and keys whose hash another live key has.
        self._hashes = np.empty(0, dtype=np.int64)
        self._numbers = np.empty(0, dtype=np.int64)
        self._recent: dict[int, int] = {}
        self._spill: dict[Ref, int] = {}

    def __len__(self) -> int:
        return self._count

    @property
    def numbered(self) -> int:
        """How many numbers were given (live or not)."""
        return self._live.n

    def ref(self, number: int) -> Ref:
        return self._owners[int(self._owner.view[number])], self._ids[number]

    def _is(self, number: int, ref: Ref) -> bool:
        no = self._owner_no.get(ref[0])
        return (
            no is not None
            and int(self._owner.view[number]) == no
            and self._ids.raw(number) == _utf8(ref[1])
        )

    def _by_hash(self, h: int) -> tuple[int, int]:
        """(number, index into the sorted arrays or -1) of the live key with hash ``h``;
        number -1 when none."""
        number = self._recent.get(h)
        if number is not None:
            return number, -1
        i = int(np.searchsorted(self._hashes, h))
        if i < len(self._hashes) and int(self._hashes[i]) == h:
            return int(self._numbers[i]), i
        return -1, -1

    def find(self, ref: Ref) -> int | None:
        """The number of ``ref`` if it is live, else None."""
        if self._spill:
            spilled = self._spill.get(ref)
            if spilled is not None:
                return spilled
        number, _ = self._by_hash(_key(ref))
        if number < 0 or not self._is(number, ref):
            return None
        return number

    def add(self, ref: Ref) -> int:
        """Number ``ref`` (which must not be live)."""
        owner, listing_id = ref
        no = self._owner_no.get(owner)
        if no is None:
            no = self._owner_no[owner] = len(self._owners)
            self._owners.append(owner)
        number = self._ids.append(listing_id)
        self._owner.append(no)
        self._live.append(True)
        self._count += 1
        h = _key(ref)
        held, _ = self._by_hash(h)
        if held >= 0:
            self._spill[ref] = number  # another live key has this hash
        else:
            self._recent[h] = number
            if len(self._recent) > max(MERGE_MIN, len(self._hashes) // 32):
                self._merge()
        return number

    def drop(self, ref: Ref) -> int | None:
        """Take ``ref`` out; its number, or None if it was not live."""
        number = self.find(ref)
        if number is None:
            return None
        if self._spill.pop(ref, None) is None:
            h = _key(ref)
            if self._recent.get(h) == number:
                del self._recent[h]
            else:
                _, i = self._by_hash(h)
                self._numbers[i] = -1
        self._live.set(number, False)
        self._count -= 1
        return number

    def _merge(self) -> None:
        keep = self._numbers >= 0
        hashes = np.concatenate(
            [self._hashes[keep], np.fromiter(self._recent, np.int64, len(self._recent))]
        )
        numbers = np.concatenate(
            [
                self._numbers[keep],
                np.fromiter(self._recent.values(), np.int64, len(self._recent)),
            ]
        )
        self._hashes, self._numbers = _sorted(hashes, numbers)
        self._recent = {}

    def live_numbers(self) -> npt.NDArray[np.int64]:
        return np.flatnonzero(self._live.view).astype(np.int64)

    def __getstate__(self) -> dict[str, Any]:
        """Without the hash index: string hashes differ from one process to the next
        (a snapshot is read by another worker), so it is made again on loading."""
        state = dict(vars(self))
        for name in ("_hashes", "_numbers", "_recent", "_spill"):
            del state[name]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        vars(self).update(state)
        self._hashes = np.empty(0, dtype=np.int64)
        self._numbers = np.empty(0, dtype=np.int64)
        self._recent = {}
        self._spill = {}
        for number in self.live_numbers().tolist():
            ref = self.ref(number)
            h = _key(ref)
            if h in self._recent:
                self._spill[ref] = number
            else:
                self._recent[h] = number
        self._merge()

    def __iter__(self) -> Iterator[Ref]:
        """Live keys in the order they were numbered."""
        for number in self.live_numbers().tolist():
            yield self.ref(number)

    def __contains__(self, ref: object) -> bool:
        return (
            isinstance(ref, tuple)
            and len(ref) == 2
            and all(isinstance(part, str) for part in ref)
            and self.find(ref) is not None
        )

    def __getitem__(self, ref: Ref) -> int:
        number = self.find(ref)
        if number is None:
            raise KeyError(ref)
        return number

    def pop(self, ref: Ref, default: Any = None) -> Any:
        number = self.drop(ref)
        return default if number is None else number


class StampTable:
    """``ref -> stamp`` (a tuple of up to ``WIDTH`` ints) for many refs, as a dict would;
    dropped keys' room is taken back once they are as many as the live ones."""

    WIDTH = 3

    def __init__(self) -> None:
        self._table = RefTable()
        self._values = Growable(np.int64, width=self.WIDTH)
        self._lengths = Growable(np.int8)

    def __len__(self) -> int:
        return len(self._table)

    def __iter__(self) -> Iterator[Ref]:
        return iter(self._table)

    def __contains__(self, ref: object) -> bool:
        return ref in self._table

    def get(self, ref: Ref) -> tuple[int, ...] | None:
        number = self._table.find(ref)
        return None if number is None else self._stamp(number)

    def _stamp(self, number: int) -> tuple[int, ...]:
        return tuple(self._values.view[number, : int(self._lengths.view[number])].tolist())

    def __getitem__(self, ref: Ref) -> tuple[int, ...]:
        stamp = self.get(ref)
        if stamp is None:
            raise KeyError(ref)
        return stamp

    def __setitem__(self, ref: Ref, stamp: tuple[int, ...]) -> None:
        if len(stamp) > self.WIDTH:
            raise ValueError(f"a stamp has at most {self.WIDTH} parts: {stamp!r}")
        row = [*stamp, *[0] * (self.WIDTH - len(stamp))]
        number = self._table.find(ref)
        if number is None:
            self._table.add(ref)
            self._values.append(row)
            self._lengths.append(len(stamp))
        else:
            self._values.set(number, row)
            self._lengths.set(number, len(stamp))

    def __delitem__(self, ref: Ref) -> None:
        if self.pop(ref) is None:
            raise KeyError(ref)

    def pop(self, ref: Ref, default: Any = None) -> Any:
        number = self._table.drop(ref)
        if number is None:
            return default
        stamp = self._stamp(number)
        dead = self._table.numbered - len(self._table)
        if dead > max(MERGE_MIN, len(self._table)):
            self._compact()
        return stamp

    def _compact(self) -> None:
        """Renumber the live keys from 0 (their order kept)."""
        old, values, lengths = self._table, self._values, self._lengths
        self._table = RefTable()
        self._values = Growable(np.int64, width=self.WIDTH)
        self._lengths = Growable(np.int8)
        live = old.live_numbers()
        for number in live.tolist():
            self._table.add(old.ref(number))
        self._values.extend(values.view[live])
        self._lengths.extend(lengths.view[live])

    def __eq__(self, other: object) -> bool:
        """Equal to a table or dict that holds the same stamps (in any order)."""
        if isinstance(other, StampTable):
            return len(self) == len(other) and dict(self.items()) == dict(other.items())
        if isinstance(other, dict):
            return dict(self.items()) == other
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable, as a dict

    def items(self) -> Iterator[tuple[Ref, tuple[int, ...]]]:
        for ref in self._table:
            stamp = self.get(ref)
            assert stamp is not None
            yield ref, stamp


def _digest(key: bytes) -> int:
    """A 64-bit hash of ``key``, the same in every process (a snapshot keeps them)."""
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little", signed=True)


class KeyIds:
    """Numbers of distinct byte strings (``scoring``'s sets of coded columns), found by
    a hash of them: 16 bytes a string, where a dict of them took ~150. The strings are
    not kept: ``find`` is given a way to make the string of a number, and checks every
    number whose hash matches (two strings with one hash are told apart)."""

    def __init__(self, keys: list[bytes]) -> None:
        """``keys[i]`` has number i."""
        hashes = np.fromiter((_digest(k) for k in keys), dtype=np.int64, count=len(keys))
        self._hashes, self._ids = _sorted(hashes, np.arange(len(keys), dtype=np.int64))
        self._recent: dict[int, list[int]] = {}
        self._added = 0

    def find(self, key: bytes, key_of: Callable[[int], bytes]) -> int | None:
        h = _digest(key)
        for number in self._recent.get(h, ()):
            if key_of(number) == key:
                return number
        lo = int(np.searchsorted(self._hashes, h, side="left"))
        hi = int(np.searchsorted(self._hashes, h, side="right"))
        for number in self._ids[lo:hi].tolist():
            if key_of(number) == key:
                return int(number)
        return None

    def add(self, key: bytes, number: int) -> None:
        self._recent.setdefault(_digest(key), []).append(number)
        self._added += 1
        if self._added > max(MERGE_MIN, len(self._hashes) // 32):
            pairs = [(h, n) for h, numbers in self._recent.items() for n in numbers]
            self._hashes, self._ids = _sorted(
                np.concatenate([self._hashes, np.array([h for h, _ in pairs], np.int64)]),
                np.concatenate([self._ids, np.array([n for _, n in pairs], np.int64)]),
            )
            self._recent, self._added = {}, 0
