"""Text encoding of a CSV export: UTF-8 (with or without BOM) or GB18030, never guessed wrong.

Chinese hospital systems export GBK (or its superset GB18030) as often as UTF-8, and
ordinary GBK exports are mostly ASCII lines. So the file is classified by the *lines that
hold non-ASCII bytes*, all of them (one streaming pass, see :mod:`drgsim.inputs.csvscan`):

* all valid UTF-8 -> UTF-8 (``utf-8-sig`` with a BOM);
* none valid UTF-8 -> GB18030 (decodes every GBK file identically);
* some of each -> mixed: an error naming the first offending lines and byte offsets.

``--encoding X`` forces an encoding; ``--encoding X:replace`` also replaces undecodable
bytes by U+FFFD and marks the rows it touched (column ``encoding_replaced``).
"""

from __future__ import annotations

import codecs
import os
from dataclasses import dataclass
from pathlib import Path

from drgsim.errors import RecordsError

ERROR_MODES = ("strict", "replace")


@dataclass(frozen=True)
class EncodingSpec:
    """A user's ``--encoding``: a codec name (None = detect) and an error mode."""

    name: str | None = None
    errors: str = "strict"

    @property
    def replace(self) -> bool:
        return self.errors == "replace"


def parse_encoding(text: str | None) -> EncodingSpec:
    """``None``/``auto`` -> detect; ``NAME`` or ``NAME:replace``; unknown names are an error.

    >>> parse_encoding("gbk:replace")
    EncodingSpec(name='gbk', errors='replace')
    """
    if text is None or text.strip().lower() in ("", "auto"):
        return EncodingSpec()
    name, _, errors = text.strip().partition(":")
    errors = errors.strip().lower() or "strict"
    if errors not in ERROR_MODES:
        raise RecordsError(f"--encoding {text!r}: after ':' only 'replace' is allowed "
                           "(e.g. utf-8:replace)")
    if name.strip().lower() in ("", "auto"):
        if errors == "replace":
            raise RecordsError(f"--encoding {text!r}: name the encoding to replace bytes "
                               "against (e.g. utf-8:replace or gb18030:replace)")
        return EncodingSpec()
    try:
        codecs.lookup(name.strip())
    except LookupError:
        raise RecordsError(f"--encoding {name.strip()!r}: unknown encoding (use e.g. utf-8, "
                           "gb18030, gbk; add ':replace' to replace undecodable bytes)") from None
    return EncodingSpec(name.strip(), errors)


def ascii_compatible(name: str) -> bool:
    """Delimiters, quotes and line ends are the same single bytes as in ASCII."""
    try:
        return ',"\r\n'.encode(name) == b',"\r\n' and "a".encode(name) == b"a"
    except (LookupError, UnicodeError):
        return False


def is_utf8(name: str) -> bool:
    return codecs.lookup(name).name in ("utf-8", "utf-8-sig")


def classify(path: str | os.PathLike[str], scan) -> str:
    """``utf-8-sig``, ``utf-8`` or ``gb18030`` from a :class:`~drgsim.inputs.csvscan.ScanResult`.

    Raises :class:`RecordsError` for a file whose non-ASCII lines are part UTF-8, part not.
    """
    if scan.non_utf8_lines == 0:
        return "utf-8-sig" if scan.bom else "utf-8"
    if scan.utf8_lines == 0 and not scan.bom:
        return "gb18030"
    bad = ", ".join(f"line {ln} (byte {off})" for ln, off in scan.non_utf8_examples)
    good = ", ".join(f"line {ln}" for ln, _ in scan.utf8_examples[:3]) or "the BOM"
    raise RecordsError(
        f"{path}:{scan.non_utf8_examples[0][0]}: mixed encoding: {scan.non_utf8_lines:,} line(s) "
        f"with non-ASCII bytes are not UTF-8 (first: {bad}) while {scan.utf8_lines:,} are "
        f"(first: {good}); name one with --encoding (utf-8:replace replaces the bad bytes "
        "and marks those rows)")


def detect_encoding(path: str | os.PathLike[str]) -> str:
    """``utf-8-sig``, ``utf-8`` or ``gb18030`` for a CSV file (one streaming pass).

    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "a.csv")
    >>> _ = open(p, "wb").write("性别\\n男\\n".encode("gbk"))
    >>> detect_encoding(p)
    'gb18030'
    """
    from drgsim.inputs.csvscan import scan_csv

    return classify(Path(path), scan_csv(path))


def arrow_encoding(name: str) -> str:
    """The name pyarrow's CSV reader accepts for an encoding (it strips no BOM itself)."""
    return "utf-8" if name.lower().replace("_", "-") in ("utf-8-sig", "utf8-sig") else name
