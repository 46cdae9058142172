"""Atomic file and directory writes: readers never see a half-written output.

Every output the pipeline produces goes through one of these helpers: write into a temporary
sibling, fsync, then `os.replace` (atomic on POSIX within one file system). A crash or SIGKILL
leaves at most a `.tmp-*` sibling, never a partial file under the final name that Snakemake or DVC
would take as complete.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_paths(*paths: str | os.PathLike) -> Iterator[list[Path]]:
    """`atomic_path` for several files that form one output (e.g. scores.csv + metrics.json): all
    are written to temporary siblings first and renamed back to back only when every one is
    complete, so a crash while computing or writing leaves none of them under its final name.
    (The renames are not one atomic step; the last path is renamed last.)"""
    finals = [Path(p) for p in paths]
    tmps: list[Path] = []
    try:
        for path in finals:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".tmp-{path.name}.", dir=path.parent)
            os.close(fd)
            tmps.append(Path(tmp))
        yield list(tmps)
        for tmp in tmps:
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o666 & ~_umask())
        for tmp, path in zip(tmps, finals):
            os.replace(tmp, path)
    finally:
        for tmp in tmps:
            if tmp.exists():
                tmp.unlink()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary file path next to `path`; on success it replaces `path` atomically
    (mode 0666 & ~umask, as a plain open() would give)."""
    with atomic_paths(path) as (tmp,):
        yield tmp


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary directory next to `path`; on success it replaces `path` (rename).

    An existing `path` is moved aside first and removed only after the rename succeeded.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{path.name}.", dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp creates 0700
        old = None
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".old-{path.name}.", dir=path.parent))
            os.replace(path, old / "x")
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_text(path: str | os.PathLike, text: str) -> None:
    """Atomically write a text file."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Atomically write JSON (sorted keys, indented). NaN is refused, never written silently."""
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file."""
    with open(path) as fh:
        return json.load(fh)
