"""Guess the text encoding of a CSV export: UTF-8 (with or without BOM) or GB18030.

Chinese hospital systems export GBK (or its superset GB18030) as often as UTF-8. A file
that decodes as strict UTF-8 is UTF-8; otherwise it is read as GB18030, which decodes
every GBK file identically. Anything else must be named with ``--encoding``.
"""

from __future__ import annotations

import codecs
import os
from pathlib import Path

_SAMPLE = 1 << 20
_SCAN = 64 << 20  # an all-ASCII file is read at most this far before calling it UTF-8


def detect_encoding(path: str | os.PathLike[str], sample: int = _SAMPLE) -> str:
    """``utf-8-sig``, ``utf-8`` or ``gb18030`` from the first ``sample`` bytes of a file.

    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "a.csv")
    >>> _ = open(p, "wb").write("性别\\n男\\n".encode("gbk"))
    >>> detect_encoding(p)
    'gb18030'
    """
    with open(Path(path), "rb") as fh:
        head = fh.read(sample)
        if head.startswith(codecs.BOM_UTF8):
            return "utf-8-sig"
        # a pure-ASCII start says nothing: look further (up to _SCAN) for the first
        # non-ASCII byte; chunks of ASCII end on a character boundary
        scanned = len(head)
        while head.isascii() and len(head) == sample and scanned < _SCAN:
            head = fh.read(sample)
            scanned += len(head)
    dec = codecs.getincrementaldecoder("utf-8")("strict")
    try:
        # final=False: a multi-byte character cut at the sample's end is not an error
        dec.decode(head, final=len(head) < sample)
        return "utf-8"
    except UnicodeDecodeError:
        return "gb18030"


def check_encoding(name: str) -> str:
    """``name`` if Python knows the encoding; else a one-line :class:`RecordsError`."""
    try:
        codecs.lookup(name)
    except LookupError:
        from drgsim.errors import RecordsError

        raise RecordsError(f"unknown encoding {name!r} (e.g. utf-8, gb18030)") from None
    return name


def arrow_encoding(name: str) -> str:
    """The name pyarrow's CSV reader accepts for an encoding (it strips no BOM itself)."""
    check_encoding(name)
    return "utf-8" if name.lower().replace("_", "-") in ("utf-8-sig", "utf8-sig") else name
