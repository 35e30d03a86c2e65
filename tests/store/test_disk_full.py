"""A full disk under the database is a StoreFull with a sentence, never a raw SQLite error, and
the store remembers it (for /healthz) until a write succeeds again."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.store import StoreError, StoreFull, StoreWriteFailed, open_store
from tests.store.full_disk import FullDisk, full_disk


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[FullDisk]:
    with full_disk(tmp_path) as prepared:
        yield prepared


def test_a_write_on_a_full_disk_is_refused_with_a_sentence_and_nothing_of_it_is_kept(disk: FullDisk) -> None:
    path = disk.folder / "certops.db"
    store = open_store(str(path))
    try:
        disk.attach(store)
        store.audit("ada", "command", "/ssl status", "received")
        disk.fill()
        with pytest.raises(StoreFull) as refused:
            store.audit("ada", "command", "/ssl heal www", "received")
        assert str(refused.value) == f"certops cannot save to {path}: the disk is full"
        assert refused.value.reason == "the disk is full"
        assert isinstance(refused.value, StoreWriteFailed)
        subjects = [entry.subject for entry in store.audit_log()]  # reading still works
        assert "/ssl status" in subjects
        assert "/ssl heal www" not in subjects
    finally:
        store.close()


def test_the_store_names_its_write_problem_until_a_write_succeeds_again(disk: FullDisk) -> None:
    store = open_store(str(disk.folder / "certops.db"))
    try:
        disk.attach(store)
        assert store.write_problem() is None
        disk.fill()
        with pytest.raises(StoreFull):
            store.audit("ada", "command", "/ssl status", "received")
        assert store.write_problem() == "the database cannot be written (the disk is full)"
        store.audit_log()
        assert store.write_problem() is not None, "a read says nothing about writing"
        disk.free()
        store.audit("ada", "command", "/ssl status", "received")
        assert store.write_problem() is None
    finally:
        store.close()


def test_a_database_that_cannot_be_created_on_a_full_disk_says_so(disk: FullDisk) -> None:
    if not disk.mounted:
        pytest.skip("needs a filesystem that can really be filled (mounting a tmpfs needs root)")
    disk.fill()
    with pytest.raises(StoreError) as refused:
        open_store(str(disk.folder / "certops.db"))
    assert "the disk is full" in str(refused.value) or "disk reported an error" in str(refused.value)
    assert str(refused.value).startswith("cannot open ")
