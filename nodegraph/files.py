"""File writing that never leaves a partial file and never escapes its folder."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable

from .errors import NodegraphError

_UMASK = os.umask(0)  # read once (os.umask can only be read by setting it), then restored
os.umask(_UMASK)
FILE_MODE = 0o666 & ~_UMASK  # what open() would have given: mkstemp's 0600 is too private for outputs


def atomic_write(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        _remove_quietly(tmp)
        raise
    return path


def inside(root: str | os.PathLike, relative: str) -> Path:
    """``root/relative`` resolved, refusing anything (``..``, absolute paths, symlinks) that leaves ``root``."""
    root_real = Path(os.path.realpath(root))
    if not relative or os.path.isabs(relative) or relative.startswith(("~", "\\")):
        raise NodegraphError(f"{relative!r} is not a relative path and would write outside the output folder")
    candidate = Path(os.path.realpath(root_real / relative))
    if candidate != root_real and root_real not in candidate.parents:
        raise NodegraphError(f"{relative!r} would write outside the output folder {str(root_real)!r}")
    return candidate


def write_new_file(folder: Path, name_for: Callable[[int], str], write: Callable[[Path], None]) -> Path:
    """Write a file under the first free name ``name_for(1)``, ``name_for(2)``, ... never overwriting.

    ``write`` fills a temporary file; a hard link claims the final name atomically, so two
    writers racing for one number cannot overwrite each other.
    """
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".partial-", dir=folder)
    os.fchmod(fd, FILE_MODE)
    os.close(fd)
    try:
        write(Path(tmp))
        number = _first_free(folder, name_for)
        while True:
            final = folder / name_for(number)
            try:
                os.link(tmp, final)
                return final
            except FileExistsError:
                number += 1
    finally:
        _remove_quietly(tmp)


def move_to_new_folder(source: Path, folder: Path, name_for: Callable[[int], str]) -> Path:
    """Move the finished folder ``source`` to the first free name ``name_for(1)``, ``name_for(2)``, ... in
    ``folder`` (on the same file system: one rename, so nobody sees a half-written folder there)."""
    number = _first_free(folder, name_for)
    while True:
        final = folder / name_for(number)
        try:
            os.mkdir(final)  # claims the number; the rename then replaces the empty folder in one step
        except FileExistsError:
            number += 1
            continue
        os.rename(source, final)
        return final


def _first_free(folder: Path, name_for: Callable[[int], str]) -> int:
    """Skip past existing numbers quickly (binary search over the numbering), then probe."""
    if not (folder / name_for(1)).exists():
        return 1
    low, high = 1, 2
    while (folder / name_for(high)).exists():
        low, high = high, high * 2
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if (folder / name_for(mid)).exists() else (low, mid)
    return high


def _remove_quietly(path: str | os.PathLike) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
