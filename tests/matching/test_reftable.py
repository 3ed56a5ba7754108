"""The key tables that hold the hub's listings without a Python object per listing: a
key found is the key asked for, whatever hashes collide, whatever was dropped, merged,
compacted or written to a snapshot and read by another process."""

from __future__ import annotations

import pickle

import pytest

from node.matching import reftable
from node.matching.reftable import KeyIds, RefTable, StampTable, StringColumn

REFS = [("th", f"th-{i}") for i in range(300)] + [("vn", f"vn-{i}") for i in range(300)]


def test_strings_come_back_as_written() -> None:
    column = StringColumn()
    texts = ["", "plain", "ข้าวหอมมะลิ", "ဆန်စက်", "稻谷干燥", "lone \ud800 surrogate", "x" * 5000]
    numbers = [column.append(t) for t in texts]
    assert numbers == list(range(len(texts)))
    assert [column[i] for i in numbers] == texts


@pytest.mark.parametrize("collide", [False, True])
def test_keys_are_found_dropped_and_listed_in_order(
    monkeypatch: pytest.MonkeyPatch, collide: bool
) -> None:
    monkeypatch.setattr(reftable, "MERGE_MIN", 8)  # many merges
    if collide:  # every key the same hash: each must still be told apart
        monkeypatch.setattr(reftable, "_key", lambda ref: 7)
    table = RefTable()
    assert [table.add(ref) for ref in REFS] == list(range(len(REFS)))
    assert all(table.find(ref) == i for i, ref in enumerate(REFS))
    assert table.find(("th", "vn-1")) is None and ("vn", "th-1") not in table
    dropped = REFS[::3]
    assert [table.drop(ref) for ref in dropped] == list(range(0, len(REFS), 3))
    assert table.drop(REFS[0]) is None
    kept = [ref for ref in REFS if ref not in dropped]
    assert list(table) == kept and len(table) == len(kept)
    assert all(table.find(ref) is None for ref in dropped)
    # A dropped key added again gets a new number; the old one stays dead.
    again = table.add(REFS[0])
    assert again == len(REFS) and table[REFS[0]] == again
    assert table.ref(0) == REFS[0] and table.numbered == len(REFS) + 1
    with pytest.raises(KeyError):
        table[REFS[3]]
    assert table.pop(REFS[3], "gone") == "gone"
    assert 5 not in table and ("th",) not in table


def test_a_table_read_in_another_process_finds_its_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """String hashes differ between processes (a snapshot is read by the next worker):
    the index is made again on loading, not taken from the file."""
    monkeypatch.setattr(reftable, "MERGE_MIN", 8)
    table = RefTable()
    for ref in REFS:
        table.add(ref)
    for ref in REFS[:50]:
        table.drop(ref)
    saved = pickle.dumps(table)
    monkeypatch.setattr(reftable, "_key", lambda ref: hash(ref[::-1]) ^ 0x5DEECE66D)
    loaded = pickle.loads(saved)  # noqa: S301 - written just above
    assert list(loaded) == REFS[50:]
    assert all(loaded.find(ref) == i for i, ref in enumerate(REFS) if i >= 50)
    assert all(loaded.find(ref) is None for ref in REFS[:50])
    assert loaded.add(REFS[0]) == len(REFS) and loaded.find(REFS[0]) == len(REFS)


def test_stamps_behave_as_a_dict(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reftable, "MERGE_MIN", 8)  # compactions too
    stamps = StampTable()
    model: dict[tuple[str, str], tuple[int, ...]] = {}
    for i, ref in enumerate(REFS):
        stamp = (i, 1_700_000_000_000 + i) if i % 2 else (i, 2**62, 3)
        stamps[ref] = model[ref] = stamp
    for i, ref in enumerate(REFS[::2]):
        stamps[ref] = model[ref] = (i + 1000,)
    for ref in REFS[100:500]:
        del stamps[ref]
        del model[ref]
    assert len(stamps) == len(model)
    assert list(stamps.items()) == [(ref, model[ref]) for ref in REFS if ref in model]
    assert all(stamps.get(ref) == model.get(ref) for ref in REFS)
    assert REFS[100] not in stamps and stamps.pop(REFS[100]) is None
    with pytest.raises(KeyError):
        del stamps[REFS[100]]
    with pytest.raises(ValueError, match="at most 3"):
        stamps[REFS[0]] = (1, 2, 3, 4)
    loaded = pickle.loads(pickle.dumps(stamps))  # noqa: S301 - written just above
    assert dict(loaded.items()) == model


def test_stamp_tables_compare_as_dicts() -> None:
    one, two = StampTable(), StampTable()
    for ref in REFS[:20]:
        one[ref] = (1, 2)
    for ref in reversed(REFS[:20]):
        two[ref] = (1, 2)
    assert one == two and one == dict.fromkeys(REFS[:20], (1, 2))
    two[REFS[0]] = (1, 3)
    assert one != two
    del two[REFS[0]]
    assert one != two
    assert one.__eq__("a table") is NotImplemented


@pytest.mark.parametrize("collide", [False, True])
def test_distinct_strings_get_their_own_numbers(
    monkeypatch: pytest.MonkeyPatch, collide: bool
) -> None:
    monkeypatch.setattr(reftable, "MERGE_MIN", 8)
    if collide:
        monkeypatch.setattr(reftable, "_digest", lambda key: 42)
    keys = [f"set-{i}".encode() for i in range(100)]
    ids = KeyIds(keys[:40])
    for number, key in enumerate(keys[40:], start=40):
        assert ids.find(key, keys.__getitem__) is None
        ids.add(key, number)
    assert [ids.find(key, keys.__getitem__) for key in keys] == list(range(100))
    assert ids.find(b"set-100", keys.__getitem__) is None
