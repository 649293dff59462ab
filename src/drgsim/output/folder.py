"""A folder of outputs written as one unit: atomic files, a run fingerprint, a manifest last.

While a run writes, the folder holds a journal (``.drgsim-run.json``: the fingerprint and
the files finished so far) and no ``manifest.json``; the manifest is written last, so a
folder without one is incomplete. A re-run with the same fingerprint may reuse the files an
earlier (complete or interrupted) run finished; every other file an earlier run wrote is
deleted, so no stale file of an earlier run ever sits beside new ones. Files drgsim did not
write are never touched.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from drgsim.output.atomic import PART_MARKER, AtomicFile, write_text

MANIFEST = "manifest.json"
JOURNAL = ".drgsim-run.json"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def fingerprint(inputs: Iterable[str | os.PathLike[str] | None] = (),
                options: Mapping[str, Any] | None = None) -> str:
    """Hash of the inputs' bytes (files, or every file of a folder) and the options.

    Two runs with the same fingerprint produce the same outputs; paths do not count, only
    contents, so a moved input keeps its fingerprint.
    """
    h = hashlib.sha256()
    from drgsim import __version__

    h.update(f"drgsim {__version__}\n".encode())
    for src in inputs:
        if src is None:
            h.update(b"<none>\n")
            continue
        p = Path(src)
        files = sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p]
        for f in files:
            rel = f.relative_to(p).as_posix() if p.is_dir() else ""
            h.update(f"{rel}\0{_sha256(f)}\n".encode())
    h.update(json.dumps(dict(options or {}), sort_keys=True, default=str).encode())
    return h.hexdigest()[:32]


def _intact(f: Path, entry: dict) -> bool:
    """``f`` is the file ``entry`` recorded: same size, same sha256."""
    try:
        if not f.is_file() or f.stat().st_size != entry.get("size"):
            return False
    except OSError:
        return False
    return _sha256(f) == entry.get("sha256")


def _read_json(p: Path) -> dict | None:
    try:
        d = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return d if isinstance(d, dict) else None


def _writer_of(rec: dict | None) -> str | None:
    """The command that wrote a manifest/journal (older ones: from 'command'/'generator')."""
    if not rec:
        return None
    w = rec.get("writer") or str(rec.get("command") or "").split(" ")[0]
    if not w and str(rec.get("generator", "")).endswith(" synth"):
        w = "synth"
    return w or None


class OutputFolder:
    """Write a folder of outputs as a unit (see the module docstring).

    >>> with OutputFolder(out, fp, owned=["*.parquet"]) as folder:   # doctest: +SKIP
    ...     with folder.file("cases.parquet") as tmp:
    ...         table.to_parquet(tmp)
    ...     folder.commit({"rows": n})                                # manifest.json, last

    ``owned``: glob patterns (relative to the folder) of files this command writes; files
    matching them that the current run does not write are removed as stale even when no
    earlier manifest lists them (outputs of older drgsim versions).
    """

    def __init__(self, path: str | os.PathLike[str], fingerprint: str,
                 owned: Sequence[str] = (), writer: str | None = None):
        self.path = Path(path)
        self.fingerprint = fingerprint
        self.owned = tuple(owned)
        self.writer = writer  # the command ('synth', 'simulate', ...): another's folder is refused
        self.files: dict[str, dict[str, Any]] = {}
        self._reusable: dict[str, dict[str, Any]] = {}
        self._opened = False
        self.committed = False

    # ------------------------------------------------------------ state of a folder
    @staticmethod
    def complete(path: str | os.PathLike[str], fingerprint: str | None = None) -> dict | None:
        """The manifest of a complete folder (with ``fingerprint``, if given), else None.

        Complete means: ``manifest.json`` present and every file it lists there, intact
        (size and sha256).
        """
        root = Path(path)
        m = _read_json(root / MANIFEST)
        if not m or not isinstance(m.get("files"), dict):
            return None
        if fingerprint is not None and m.get("fingerprint") != fingerprint:
            return None
        for name, e in m["files"].items():
            if not _intact(root / name, e):
                return None
        return m

    def _previous(self) -> dict[str, dict[str, Any]]:
        """Files an earlier run recorded (manifest, else journal): name -> entry."""
        out: dict[str, dict[str, Any]] = {}
        for rec in (_read_json(self.path / JOURNAL), _read_json(self.path / MANIFEST)):
            if rec and isinstance(rec.get("files"), dict):
                for name, e in rec["files"].items():
                    if isinstance(e, dict):
                        out[str(name)] = {**e, "fingerprint": rec.get("fingerprint")}
        return out

    def _ours(self, rel: str) -> bool:
        name = rel.rsplit("/", 1)[-1]
        if name.startswith(".") and PART_MARKER in name:
            return True  # a temporary file left by a killed run
        return any(fnmatch.fnmatchcase(rel, pat) for pat in self.owned)

    # ------------------------------------------------------------ a run
    def open(self) -> OutputFolder:
        """Start a run: the folder becomes incomplete, stale files of earlier runs go."""
        self.path.mkdir(parents=True, exist_ok=True)
        for rec_name in (MANIFEST, JOURNAL):
            other = _writer_of(_read_json(self.path / rec_name))
            if self.writer and other and other != self.writer:
                from drgsim.errors import OutputError

                raise OutputError(f"-o {self.path} holds the output of 'drgsim {other}' "
                                  f"({rec_name}); 'drgsim {self.writer}' would delete it: "
                                  "write somewhere else, or delete that folder first")
        prev = self._previous()
        with contextlib.suppress(FileNotFoundError):
            (self.path / MANIFEST).unlink()  # from now on the folder is incomplete
        for name, e in prev.items():
            f = self.path / name
            if e.get("fingerprint") == self.fingerprint and _intact(f, e):
                self._reusable[name] = {"size": e["size"], "sha256": e.get("sha256")}
            else:
                self._remove(name)
        for f in sorted(self.path.rglob("*")):
            rel = f.relative_to(self.path).as_posix()
            if f.is_file() and rel not in self._reusable and rel != JOURNAL and self._ours(rel):
                self._remove(rel)
        self._opened = True
        self._journal()
        return self

    def __enter__(self) -> OutputFolder:
        return self.open()

    def __exit__(self, typ, exc, tb) -> None:
        if exc is None and not self.committed:
            raise RuntimeError("OutputFolder: commit() was not called")
        # on failure the journal stays: a re-run reuses what was finished, and no manifest

    def _journal(self) -> None:
        write_text(self.path / JOURNAL, json.dumps(
            {"fingerprint": self.fingerprint, "files": self.files, "writer": self.writer},
            indent=1, sort_keys=True))

    def _remove(self, rel: str) -> None:
        f = self.path / rel
        with contextlib.suppress(FileNotFoundError):
            f.unlink()
        d = f.parent
        while d != self.path and d.is_relative_to(self.path):
            try:
                d.rmdir()  # only when empty
            except OSError:
                break
            d = d.parent

    def reusable(self, name: str) -> bool:
        """True when an earlier run with the same fingerprint finished ``name``."""
        return name in self._reusable

    def keep(self, name: str) -> Path:
        """Reuse the earlier run's ``name`` as this run's (see :meth:`reusable`)."""
        self.files[name] = self._reusable[name]
        self._journal()
        return self.path / name

    def start(self, name: str) -> AtomicFile:
        """A temporary file for ``name``; hand it to :meth:`finish` when written."""
        if not self._opened:
            raise RuntimeError("OutputFolder: open() first")
        target = self.path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        return AtomicFile(target)

    def finish(self, f: AtomicFile) -> Path:
        """Rename a written temporary file onto its name and record it in the journal."""
        f.commit()
        name = f.target.relative_to(self.path).as_posix()
        self.files[name] = {"size": f.target.stat().st_size, "sha256": _sha256(f.target)}
        self._journal()
        return f.target

    def record(self, name: str) -> Path:
        """Record ``name`` as written by this run, when a writer already put it in place
        atomically itself (e.g. through :func:`drgsim.output.atomic_path`)."""
        f = self.path / name
        self.files[name] = {"size": f.stat().st_size, "sha256": _sha256(f)}
        self._journal()
        return f

    @contextlib.contextmanager
    def file(self, name: str) -> Iterator[Path]:
        """Yield a temporary path for ``name`` (relative to the folder); committed on success."""
        f = self.start(name)
        try:
            yield f.path
        except BaseException as exc:
            f.__exit__(type(exc), exc, None)  # removes the temporary file; disk full -> OutputError
            raise
        self.finish(f)

    def commit(self, info: Mapping[str, Any] | None = None) -> Path:
        """Finish the run: drop unused earlier files, write ``manifest.json`` last."""
        from drgsim import __version__

        for name in self._reusable:
            if name not in self.files:
                self._remove(name)
        manifest = {**dict(info or {}), "writer": self.writer, "drgsim_version": __version__,
                    "fingerprint": self.fingerprint,
                    "files": dict(sorted(self.files.items()))}
        path = write_text(self.path / MANIFEST,
                          json.dumps(manifest, ensure_ascii=False, indent=2) + "\n")
        with contextlib.suppress(FileNotFoundError):
            (self.path / JOURNAL).unlink()
        self.committed = True
        return path
