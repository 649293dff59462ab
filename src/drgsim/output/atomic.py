"""Atomic single-file writes: temporary name beside the target, rename when complete."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from drgsim.errors import OutputError

#: every temporary file drgsim writes has this marker in its name (``.NAME.XXXX.part.EXT``)
PART_MARKER = ".part"

_FULL = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC), errno.EFBIG)


def is_disk_full(exc: BaseException) -> bool:
    """True for 'no space left' / quota / file-too-big errors (errno, or pyarrow's message)."""
    if not isinstance(exc, OSError):
        return False
    if exc.errno in _FULL:
        return True
    text = str(exc)
    return "No space left on device" in text or "Disk quota exceeded" in text


class AtomicFile:
    """A temporary file beside ``target`` that becomes ``target`` on :meth:`commit`.

    Until then ``target`` is untouched; :meth:`discard` (or leaving the ``with`` block by an
    exception, KeyboardInterrupt included) removes the temporary file. The temporary name
    keeps the target's suffixes (``.x.parquet.ab12.part.parquet``), so writers that dispatch
    on the extension still work, and starts with a dot, so dataset readers skip it.
    """

    def __init__(self, target: str | os.PathLike[str]):
        self.target = Path(target)
        try:
            fd, name = tempfile.mkstemp(prefix=f".{self.target.name}.",
                                        suffix=PART_MARKER + "".join(self.target.suffixes),
                                        dir=self.target.parent)
        except OSError as e:
            raise OutputError(f"{self.target}: cannot write here ({e.strerror or e})") from e
        os.close(fd)
        self.path = Path(name)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(self.path, 0o666 & ~umask)  # mkstemp makes 0600; an output gets the usual mode
        self.done = False

    def commit(self) -> Path:
        """Rename the temporary file onto the target (atomic on one file system)."""
        os.replace(self.path, self.target)
        self.done = True
        return self.target

    def discard(self) -> None:
        """Remove the temporary file (the target stays as it was)."""
        if not self.done:
            with contextlib.suppress(OSError):
                self.path.unlink()
            self.done = True

    def __enter__(self) -> AtomicFile:
        return self

    def __exit__(self, typ, exc, tb) -> None:
        if exc is None:
            self.commit()
            return
        self.discard()
        if is_disk_full(exc):
            raise OutputError(f"{self.target}: disk full ({exc}); nothing written, "
                              "an earlier file there is untouched") from exc


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` on success.

    On any exception (KeyboardInterrupt, SIGTERM and SystemExit included) the temporary
    file is removed and ``target`` is left as it was; a full disk becomes an
    :class:`~drgsim.errors.OutputError` (one line, no traceback).
    """
    with AtomicFile(target) as f:
        yield f.path


@contextlib.contextmanager
def atomic_open(target: str | os.PathLike[str], mode: str = "w", **kwargs) -> Iterator[IO]:
    """``open()`` for writing, atomically (see :func:`atomic_path`)."""
    if not any(c in mode for c in "wx"):
        raise ValueError(f"atomic_open is for writing, not mode {mode!r}")
    with atomic_path(target) as tmp, open(tmp, mode, **kwargs) as fh:
        yield fh


def write_bytes(target: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``target`` atomically."""
    with atomic_open(target, "wb") as fh:
        fh.write(data)
    return Path(target)


def write_text(target: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``target`` atomically."""
    return write_bytes(target, text.encode(encoding))
