"""A disk that really fills up under a SQLite database, for the store and the commands.

Where the tests may mount (as root in a container), the database lives on a tmpfs of 4 MiB and
`fill()` writes a file until the kernel answers ENOSPC. Elsewhere SQLite's own size limit
(`PRAGMA max_page_count`, set on every connection the store takes) is pinned at the pages the
database has, and audit lines are written until SQLite answers SQLITE_FULL, the error a full
disk gives: from then on every write to the audit log (the first write of every command) fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event

from bot.store import SqlStore, StoreFull


class FullDisk:
    def __init__(self, folder: Path, mounted: bool) -> None:
        self.folder = folder  # where the database goes
        self.mounted = mounted
        self._filler = folder / "filler"
        self._full = False
        self._store: SqlStore | None = None

    @property
    def how(self) -> str:
        return "a 4 MiB tmpfs filled to the last byte" if self.mounted else "SQLite's max_page_count"

    def attach(self, store: SqlStore) -> None:
        """Call once the store is open (only the page limit needs it)."""
        self._store = store
        if self.mounted:
            return

        def limit(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
            cursor = dbapi_connection.cursor()
            pages = cursor.execute("PRAGMA page_count").fetchone()[0]
            cursor.execute(f"PRAGMA max_page_count = {pages if self._full else 1 << 30}")
            cursor.close()

        event.listen(store._engine, "checkout", limit)  # every transaction checks a connection out

    def fill(self) -> None:
        self._full = True
        if not self.mounted:
            assert self._store is not None, "attach() the store first"
            for size in (200, 20, 1):  # smaller and smaller, until not even a short line fits a page
                try:
                    for _ in range(100_000):
                        self._store.audit("b", "b", "x" * size, "")
                    raise AssertionError("the page limit never filled the database")
                except StoreFull:
                    continue
            return
        fd = os.open(self._filler, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while True:
                os.write(fd, b"\0" * 65536)
        except OSError:  # ENOSPC: the disk is full
            pass
        try:
            while True:  # the last few bytes the big writes left over
                os.write(fd, b"\0")
        except OSError:
            pass
        finally:
            os.close(fd)

    def free(self) -> None:
        self._full = False
        if self.mounted:
            self._filler.unlink(missing_ok=True)


def _can_mount() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("mount") is not None


@contextmanager
def full_disk(tmp_path: Path) -> Iterator[FullDisk]:
    folder = tmp_path / "disk"
    folder.mkdir()
    mounted = False
    if _can_mount():
        mount = shutil.which("mount") or "mount"
        done = subprocess.run(
            [mount, "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(folder)], capture_output=True, check=False
        )
        mounted = done.returncode == 0
    try:
        yield FullDisk(folder, mounted)
    finally:
        if mounted:
            umount = shutil.which("umount") or "umount"
            subprocess.run([umount, "-l", str(folder)], capture_output=True, check=False)
