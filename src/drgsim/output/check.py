"""Check an output path before any work: not an input, a writable folder, a known format."""

from __future__ import annotations

import contextlib
import fnmatch
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from drgsim.errors import OutputError

PathLike = str | os.PathLike[str]


def _same(a: Path, b: Path) -> bool:
    if a == b:
        return True
    try:
        return os.path.samefile(a, b)  # hard links, bind mounts
    except OSError:
        return False


def _writable_dir(d: Path, out: Path) -> None:
    if not d.exists():
        raise OutputError(f"-o {out}: folder {d} does not exist")
    if not d.is_dir():
        raise OutputError(f"-o {out}: {d} is not a folder")
    try:  # a real probe: os.access says yes to root on a read-only file system
        fd, name = tempfile.mkstemp(prefix=".drgsim-probe.", dir=d)
    except OSError as e:
        raise OutputError(f"-o {out}: folder {d} is not writable ({e.strerror or e})") from e
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(name)
    if not os.access(d, os.W_OK):
        raise OutputError(f"-o {out}: folder {d} is not writable")


def check_output(
    out: PathLike,
    inputs: Iterable[PathLike | None] = (),
    formats: Sequence[str] | None = None,
    *,
    folder: bool = False,
    writes: Sequence[str] = (),
) -> Path:
    """Refuse an output that would harm an input or fail late; return it resolved.

    ``-o`` may not be an input file nor lie inside an input folder; a file output's folder
    must exist and be writable and its extension be one of ``formats`` (e.g.
    ``(".parquet", ".csv")``); a folder output (``folder=True``) may not be a file and is
    created under an existing, writable folder, and no input may be one of the files it
    ``writes`` there (glob patterns relative to the folder). Raises :class:`OutputError`, before any work.
    """
    raw = Path(out)
    target = raw.expanduser().resolve()
    for src in inputs:
        if src is None:
            continue
        s = Path(src).expanduser().resolve()
        if _same(target, s):
            raise OutputError(f"-o {raw} is the input {src}: it would be overwritten; "
                              "write somewhere else")
        if s.is_dir() and target.is_relative_to(s):
            raise OutputError(f"-o {raw} is inside the input folder {src}: it would be read "
                              "as input on the next run; write somewhere else")
        if folder and s.is_relative_to(target):
            rel = s.relative_to(target).as_posix()
            if any(fnmatch.fnmatchcase(rel, pat) for pat in writes):
                raise OutputError(f"-o {raw}: the input {src} is a file this command writes "
                                  "there; write somewhere else")
    if folder:
        if target.exists() and not target.is_dir():
            raise OutputError(f"-o {raw}: exists and is not a folder")
        d = target
        while not d.exists():
            d = d.parent
        _writable_dir(d, raw)
        return target
    if target.is_dir():
        raise OutputError(f"-o {raw} is a folder; give a file name"
                          + (f" ending in {' or '.join(formats)}" if formats else ""))
    if formats is not None:
        name = target.name.lower()
        if not any(name.endswith(f.lower()) for f in formats):
            raise OutputError(f"-o {raw}: unknown output format {raw.suffix or '(no extension)'!r}; "
                              f"use {' or '.join(formats)}")
    _writable_dir(target.parent, raw)
    return target
