"""Reading the files the config names, and the config itself, without hanging or running out of memory.

Only regular files are read: a named pipe would block until someone writes to it, a device such
as /dev/zero never ends, and the files under /proc and /sys are the system's own (a secret file
of /proc/self/environ would hand over every variable of this process). Each read has a size cap,
checked before reading and again while reading, and a deadline: a network share that stops
answering must not hold certops up forever.
"""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Callable
from typing import TypeVar

CONFIG_CAP = 4 * 1024 * 1024
SECRET_CAP = 64 * 1024
CERT_CAP = 4 * 1024 * 1024  # a CA bundle of every public root is about 250 KiB
DEADLINE = 10.0  # seconds; a local disk answers in milliseconds

# the filesystems whose files describe the system rather than hold data
_PSEUDO_ROOTS = ("/proc", "/sys")

T = TypeVar("T")


class FileRefused(Exception):
    """The file cannot be used; str() is a sentence that names the file and says what to do.
    `missing`: there is no file of that name at all."""

    def __init__(self, message: str, *, missing: bool = False) -> None:
        super().__init__(message)
        self.missing = missing


def human_size(size: int) -> str:
    """65536 -> '64 KiB', 300_000_000 -> '286 MiB'."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale:
            return f"{size / scale:.0f} {unit}"
    return f"{size} bytes"


def read_bytes(path: str | os.PathLike[str], *, cap: int, what: str, deadline: float = DEADLINE) -> bytes:
    """The whole file, if it is a regular file within `cap` that answers within `deadline`;
    FileRefused otherwise. `what` names the file in messages, e.g. "a config file"."""
    name = os.fspath(path)
    return within(deadline, lambda: _read_bytes(name, cap, what), f"{_short(name)} did not answer within {deadline:g}s")


def read_text(path: str | os.PathLike[str], *, cap: int, what: str, deadline: float = DEADLINE) -> str:
    """The whole file as UTF-8 text (a leading byte-order mark is dropped); FileRefused otherwise."""
    name = os.fspath(path)
    data = read_bytes(name, cap=cap, what=what, deadline=deadline)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FileRefused(
            f"{_short(name)} is not UTF-8 text (byte {exc.start + 1} cannot be read as UTF-8); save it as UTF-8"
        ) from None


def problem_with(
    path: str | os.PathLike[str], *, cap: int, what: str, must_exist: bool = True, deadline: float = DEADLINE
) -> str | None:
    """What is wrong with a file the config names, without opening it (a sentence), or None.

    Checked when the config is read, so `certops check-config` refuses a named pipe or /proc
    file before anything tries to read it."""
    name = os.fspath(path)
    if "\x00" in name:
        return _nul_in(name)
    if _under_pseudo_root(name):
        return _not_regular(name, "one of the system's own files (under /proc or /sys)")
    try:
        # stat never waits for a named pipe's writer, but may for a network share that hangs
        info = within(deadline, lambda: os.stat(name), f"{_short(name)} did not answer within {deadline:g}s")
    except FileRefused as late:
        return str(late)
    except FileNotFoundError:
        return f"file not found: {_short(name)}" if must_exist else None
    except OSError as exc:
        return (
            f"cannot look at {_short(name)} ({exc.strerror or type(exc).__name__}); check the path and its permissions"
        )
    return _kind_problem(name, info, cap, what)


def within(deadline: float, work: Callable[[], T], late: str) -> T:
    """`work()`'s result, or FileRefused(`late` + a fix) once `deadline` seconds have passed.

    The work runs on a daemon thread: a read stuck in the kernel cannot be interrupted, but the
    caller gets its answer on time, and the thread ends with the process if nothing else."""
    box: list[T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            box.append(work())
        except BaseException as exc:  # handed to the caller's thread below
            failure.append(exc)

    worker = threading.Thread(target=run, name="certops-read-file", daemon=True)
    worker.start()
    worker.join(deadline)
    if worker.is_alive():
        raise FileRefused(f"{late} (a network share that stopped answering?); copy the file to a local disk")
    if failure:
        raise failure[0]
    return box[0]


def _read_bytes(name: str, cap: int, what: str) -> bytes:
    # O_NONBLOCK: opening a named pipe would otherwise wait for a writer before fstat can refuse it
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0)
    if "\x00" in name:
        raise FileRefused(_nul_in(name))
    try:
        fd = os.open(name, flags)
    except FileNotFoundError:
        raise FileRefused(f"file not found: {_short(name)}", missing=True) from None
    except IsADirectoryError:
        raise FileRefused(_not_regular(name, "a folder")) from None
    except OSError as exc:
        raise FileRefused(
            f"cannot read {_short(name)} ({exc.strerror or type(exc).__name__}); check the path and its permissions"
        ) from None
    try:
        info = os.fstat(fd)  # of what was opened: a symbolic link is judged by what it points to
        problem = _kind_problem(name, info, cap, what)
        if problem:
            raise FileRefused(problem)
        chunks: list[bytes] = []
        total = 0
        while total <= cap:  # a file that grows while it is read stops at cap + 1 bytes
            try:
                chunk = os.read(fd, min(cap + 1 - total, 1 << 20))
            except OSError as exc:
                raise FileRefused(f"cannot read {_short(name)} ({exc.strerror or type(exc).__name__})") from None
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > cap:
            raise FileRefused(_too_big(name, None, cap, what))
        if info.st_size == 0 and total:
            # a file that says it is empty and yet has content is made up by the kernel as it is read
            raise FileRefused(_not_regular(name, "a file the system makes up as it is read"))
        return b"".join(chunks)
    finally:
        os.close(fd)


def _kind_problem(name: str, info: os.stat_result, cap: int, what: str) -> str | None:
    mode = info.st_mode
    kinds = (
        (stat.S_ISDIR, "a folder"),
        (stat.S_ISFIFO, "a named pipe (FIFO)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    )
    for test, kind in kinds:
        if test(mode):
            return _not_regular(name, kind)
    if not stat.S_ISREG(mode):
        return _not_regular(name, "not a file certops can read")
    if info.st_dev in _pseudo_devices():
        return _not_regular(name, "one of the system's own files (under /proc or /sys)")
    if info.st_size > cap:
        return _too_big(name, info.st_size, cap, what)
    return None


def _short(name: str) -> str:
    """A file name as messages show it: a path of thousands of characters is cut short."""
    name = name.replace("\x00", "\\x00")
    return name if len(name) <= 200 else f"{name[:180]}… ({len(name):,} characters)"


def _nul_in(name: str) -> str:
    shown = _short(name)
    return f"the file name {shown} holds a NUL character, which no file name can; write the path without it"


def _not_regular(name: str, kind: str) -> str:
    return f"{_short(name)} is {kind}, not a regular file; give the path of a regular file"


def _too_big(name: str, size: int | None, cap: int, what: str) -> str:
    measured = f"is {human_size(size)}" if size is not None else f"is more than {human_size(cap)}"
    return f"{_short(name)} {measured}, and {what} may be at most {human_size(cap)}; give the path of the right file"


def _under_pseudo_root(name: str) -> bool:
    full = os.path.realpath(name)
    return any(full == root or full.startswith(root + "/") for root in _PSEUDO_ROOTS)


def _pseudo_devices() -> set[int]:
    devices = set()
    for root in _PSEUDO_ROOTS:
        try:
            devices.add(os.stat(root).st_dev)
        except OSError:
            continue
    return devices
