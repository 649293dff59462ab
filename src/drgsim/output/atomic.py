"""Atomic single-file writes: temporary name beside the target, rename when complete."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` on success.

    On any exception (KeyboardInterrupt and SystemExit included) the temporary file is
    removed and ``target`` is left as it was. The suffix of the temporary name keeps the
    target's own suffixes, so writers that dispatch on the extension still work.
    """
    target = Path(target)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part" + "".join(target.suffixes),
                                dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a finished output gets the usual mode
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


@contextlib.contextmanager
def atomic_open(target: str | os.PathLike[str], mode: str = "w", **kwargs) -> Iterator[IO]:
    """``open()`` for writing, atomically (see :func:`atomic_path`)."""
    if not any(c in mode for c in "wx"):
        raise ValueError(f"atomic_open is for writing, not mode {mode!r}")
    with atomic_path(target) as tmp, open(tmp, mode, **kwargs) as fh:
        yield fh
