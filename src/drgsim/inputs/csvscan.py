"""One streaming pass over a CSV's bytes, before any output: structure and encoding.

A numba state machine reads the file in chunks (memory: one chunk) and finds, without
decoding anything:

* every record whose field count differs from the header's, and an unterminated quote
  (the record that opens it runs to the end of the file) — with line and byte offsets;
* for every *line* that holds non-ASCII bytes, whether it is valid UTF-8 — so one GBK line
  in a UTF-8 file is found, not guessed from the first megabyte.

Quoting follows pyarrow's reader (``"`` opens a quoted field only at the field start,
``""`` is a quote inside one, newlines inside quotes are data; empty lines are skipped),
so the records found here are the records pyarrow reads; the reader checks the counts agree.
Delimiters, quotes and line ends are ASCII bytes, never part of a UTF-8 or GB18030
multi-byte character, so the scan holds for both encodings.
"""

from __future__ import annotations

import gzip
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

CHUNK = 1 << 24  # bytes read per step: the pass's memory
# Files up to this size are scanned by the same functions run as plain Python: loading
# numba and the compiled scan costs ~0.5 s; 256 KiB (~1,000 records) scan in ~40 ms.
PY_SCAN_BYTES = 1 << 18
_PY_KERNELS: dict = {}
_JITTED: dict = {}


def _kernel(fn):
    """Mark a scan function: plain Python as written, compiled by :func:`_jitted`."""
    _PY_KERNELS[fn.__name__] = fn
    return fn


def _jitted(name: str):
    """The numba-compiled version of a :func:`_kernel` function (from numba's cache)."""
    fn = _JITTED.get(name)
    if fn is None:
        from numba import njit

        fn = _JITTED[name] = njit(cache=True, nogil=True)(_PY_KERNELS[name])
    return fn


_KEEP_LINES = 5  # example lines kept per encoding class

# state vector indices
_IN_Q, _Q_PEND, _FIELDS, _STARTED, _FIELD_START, _LINE, _REC_LINE, _REC_OFF = range(8)
_NONASCII, _U8_OK, _U8_NEED, _U8_LO, _U8_HI, _PREV_CR, _BAD_OFF, _LINE_OFF = range(8, 16)
_HDR_FIELDS, _HDR_END, _DATA, _N_U8, _N_BAD, _N_GOOD_KEPT, _N_BAD_KEPT, _REC_IDX = range(16, 24)
_SEQ_OFF = 24  # where the current multi-byte UTF-8 sequence started
_NSTATE = 25


@_kernel
def _end_line(st, off, good_lines, bad_lines):
    """Close the physical line ending at byte ``off``: classify it if it held non-ASCII."""
    if st[_NONASCII]:
        if st[_U8_OK] and st[_U8_NEED] == 0:
            st[_N_U8] += 1
            k = st[_N_GOOD_KEPT]
            if k < good_lines.shape[0]:
                good_lines[k, 0] = st[_LINE]
                good_lines[k, 1] = st[_LINE_OFF]
                st[_N_GOOD_KEPT] = k + 1
        else:
            if st[_U8_OK]:  # a multi-byte character cut by the end of the file
                st[_BAD_OFF] = st[_SEQ_OFF]
            st[_N_BAD] += 1
            k = st[_N_BAD_KEPT]
            if k < bad_lines.shape[0]:
                bad_lines[k, 0] = st[_LINE]
                bad_lines[k, 1] = st[_BAD_OFF]
                st[_N_BAD_KEPT] = k + 1
    st[_NONASCII] = 0
    st[_U8_OK] = 1
    st[_U8_NEED] = 0
    st[_LINE] += 1
    st[_LINE_OFF] = off + 1


@_kernel
def _end_record(st, end_off, bad, nbad):
    """Close the record ending at ``end_off`` (exclusive, terminator included)."""
    if st[_STARTED]:
        fields = st[_FIELDS] + 1
        if st[_HDR_FIELDS] < 0:
            st[_HDR_FIELDS] = fields
            st[_HDR_END] = end_off
        else:
            if fields != st[_HDR_FIELDS]:
                bad[nbad, 0] = st[_REC_IDX]
                bad[nbad, 1] = st[_REC_LINE]
                bad[nbad, 2] = st[_REC_OFF]
                bad[nbad, 3] = end_off
                bad[nbad, 4] = fields
                nbad += 1
            st[_REC_IDX] += 1
    st[_STARTED] = 0
    st[_FIELDS] = 0
    st[_FIELD_START] = 1
    st[_REC_OFF] = end_off
    st[_REC_LINE] = st[_LINE]
    return nbad


@_kernel
def scan_chunk(buf, n, base, st, bad, good_lines, bad_lines):
    """Scan ``buf[:n]`` (file bytes from offset ``base``); return (bytes consumed, bad rows).

    Stops early when ``bad`` is full so the caller can drain it and call again. The state
    lives in locals inside the loop (a state-array write per byte ran at 130 MB/s).
    """
    nbad = 0
    cap = bad.shape[0]
    in_q = st[_IN_Q]
    q_pend = st[_Q_PEND]
    started = st[_STARTED]
    field_start = st[_FIELD_START]
    fields = st[_FIELDS]
    nonascii = st[_NONASCII]
    u8_ok = st[_U8_OK]
    u8_need = st[_U8_NEED]
    u8_lo = st[_U8_LO]
    u8_hi = st[_U8_HI]
    prev_cr = st[_PREV_CR]
    bad_off = st[_BAD_OFF]
    seq_off = st[_SEQ_OFF]
    i = 0
    while i < n:
        # fast path: a run of ordinary ASCII bytes (no quote, delimiter or line end)
        if u8_need == 0 and not q_pend:
            j = i
            if in_q:
                while j < n:
                    c = buf[j]
                    if c == 0x22 or c < 0x20 or c >= 0x80:
                        break
                    j += 1
            else:
                while j < n:
                    c = buf[j]
                    if c == 0x22 or c == 0x2C or c < 0x20 or c >= 0x80:
                        break
                    j += 1
                if j > i:
                    started = 1
                    field_start = 0
            if j > i:
                prev_cr = 0
                i = j
                continue
        b = buf[i]
        off = base + i
        # ---- encoding: UTF-8 validity of the current physical line
        if b >= 0x80:
            nonascii = 1
            if u8_ok:
                if u8_need > 0:
                    if b < u8_lo or b > u8_hi:
                        u8_ok = 0
                        bad_off = seq_off
                    else:
                        u8_need -= 1
                        u8_lo = 0x80
                        u8_hi = 0xBF
                elif 0xC2 <= b <= 0xDF:
                    seq_off = off
                    u8_need = 1
                    u8_lo = 0x80
                    u8_hi = 0xBF
                elif 0xE0 <= b <= 0xEF:
                    seq_off = off
                    u8_need = 2
                    u8_lo = 0xA0 if b == 0xE0 else 0x80
                    u8_hi = 0x9F if b == 0xED else 0xBF
                elif 0xF0 <= b <= 0xF4:
                    seq_off = off
                    u8_need = 3
                    u8_lo = 0x90 if b == 0xF0 else 0x80
                    u8_hi = 0x8F if b == 0xF4 else 0xBF
                else:
                    u8_ok = 0
                    bad_off = off
        elif u8_need > 0 and u8_ok and b != 0x0A and b != 0x0D:
            u8_ok = 0  # an ASCII byte where a continuation byte was due
            bad_off = seq_off
        # ---- line ends (inside quotes too: they are physical lines)
        if b == 0x0A or b == 0x0D:
            if b == 0x0A and prev_cr:
                st[_LINE_OFF] = off + 1
            else:
                if nonascii:
                    if u8_ok and u8_need == 0:
                        st[_N_U8] += 1
                        k = st[_N_GOOD_KEPT]
                        if k < good_lines.shape[0]:
                            good_lines[k, 0] = st[_LINE]
                            good_lines[k, 1] = st[_LINE_OFF]
                            st[_N_GOOD_KEPT] = k + 1
                    else:
                        if u8_ok:  # a multi-byte character cut by the line end
                            bad_off = seq_off
                        st[_N_BAD] += 1
                        k = st[_N_BAD_KEPT]
                        if k < bad_lines.shape[0]:
                            bad_lines[k, 0] = st[_LINE]
                            bad_lines[k, 1] = bad_off
                            st[_N_BAD_KEPT] = k + 1
                nonascii = 0
                u8_ok = 1
                u8_need = 0
                st[_LINE] += 1
                st[_LINE_OFF] = off + 1
        prev_cr = 1 if b == 0x0D else 0
        # ---- structure
        if in_q:
            if q_pend:
                q_pend = 0
                if b == 0x22:
                    i += 1
                    continue
                in_q = 0  # the quote closed the quoted part; b is read unquoted
            elif b == 0x22:
                q_pend = 1
                i += 1
                continue
            else:
                i += 1
                continue
        if b == 0x2C:
            fields += 1
            started = 1
            field_start = 1
        elif b == 0x0A or b == 0x0D:
            if started:
                nf = fields + 1
                if st[_HDR_FIELDS] < 0:
                    st[_HDR_FIELDS] = nf
                    st[_HDR_END] = off + 1
                else:
                    if nf != st[_HDR_FIELDS]:
                        bad[nbad, 0] = st[_REC_IDX]
                        bad[nbad, 1] = st[_REC_LINE]
                        bad[nbad, 2] = st[_REC_OFF]
                        bad[nbad, 3] = off + 1
                        bad[nbad, 4] = nf
                        nbad += 1
                    st[_REC_IDX] += 1
            started = 0
            fields = 0
            field_start = 1
            st[_REC_OFF] = off + 1
            st[_REC_LINE] = st[_LINE]
            if nbad >= cap - 1:
                i += 1
                break
        elif b == 0x22 and field_start:
            in_q = 1
            started = 1
            field_start = 0
        else:
            started = 1
            field_start = 0
        i += 1
    st[_IN_Q] = in_q
    st[_Q_PEND] = q_pend
    st[_STARTED] = started
    st[_FIELD_START] = field_start
    st[_FIELDS] = fields
    st[_NONASCII] = nonascii
    st[_U8_OK] = u8_ok
    st[_U8_NEED] = u8_need
    st[_U8_LO] = u8_lo
    st[_U8_HI] = u8_hi
    st[_PREV_CR] = prev_cr
    st[_BAD_OFF] = bad_off
    st[_SEQ_OFF] = seq_off
    return i, nbad


@dataclass
class BadRecord:
    """A record that does not fit the header: where it is and what is wrong."""

    index: int  # data-row position (0 = first record after the header), in read order
    line: int  # 1-based physical line where it starts
    start: int  # byte offsets [start, end) in the (decompressed) file, terminator included
    end: int
    fields: int  # fields found; -1 for an unterminated quote

    def message(self, header_fields: int) -> str:
        if self.fields < 0:
            return "unterminated quote (the field opened here runs to the end of the file)"
        return f"{self.fields} field(s) where the header has {header_fields}"


@dataclass
class ScanResult:
    """What one pass over a CSV found."""

    size: int = 0
    bom: bool = False
    header_fields: int = 0
    header_end: int = 0  # byte offset just after the header record
    data_rows: int = 0  # records after the header, malformed ones included
    bad: list[BadRecord] = field(default_factory=list)
    utf8_lines: int = 0  # lines with non-ASCII bytes that are valid UTF-8
    non_utf8_lines: int = 0  # ... and that are not
    utf8_examples: list[tuple[int, int]] = field(default_factory=list)  # (line, byte offset)
    non_utf8_examples: list[tuple[int, int]] = field(default_factory=list)


def open_bytes(path: str | os.PathLike[str]) -> io.BufferedIOBase:
    """The file's bytes, gunzipped for ``.gz``."""
    p = Path(path)
    return gzip.open(p, "rb") if p.suffix.lower() == ".gz" else open(p, "rb")  # noqa: SIM115


def scan_csv(path: str | os.PathLike[str], chunk: int = CHUNK,
             compiled: bool | None = None) -> ScanResult:
    """Scan a CSV file in chunks of ``chunk`` bytes (see the module docstring).

    ``compiled``: run the numba scan (default: for files above ``PY_SCAN_BYTES``).
    """
    if compiled is None:
        compiled = os.path.getsize(path) > PY_SCAN_BYTES
    scan = _jitted("scan_chunk") if compiled else scan_chunk
    st = np.zeros(_NSTATE, dtype=np.int64)
    st[_LINE] = st[_REC_LINE] = 1
    st[_FIELD_START] = st[_U8_OK] = 1
    st[_HDR_FIELDS] = -1
    bad = np.zeros((4096, 5), dtype=np.int64)
    good_lines = np.zeros((_KEEP_LINES, 2), dtype=np.int64)
    bad_lines = np.zeros((_KEEP_LINES, 2), dtype=np.int64)
    res = ScanResult()
    buf = np.empty(chunk, dtype=np.uint8)
    base = 0
    with open_bytes(path) as fh:
        first = True
        while True:
            n = fh.readinto(memoryview(buf))
            if not n:
                break
            start = 0
            if first:
                first = False
                if n >= 3 and bytes(buf[:3]) == b"\xef\xbb\xbf":
                    res.bom = True
                    start = 3
                    st[_REC_OFF] = st[_LINE_OFF] = 3
            while start < n:
                view = buf[start:n] if compiled else bytes(buf[start:n])  # bytes: fast in Python
                used, nb = scan(view, n - start, base + start, st, bad, good_lines, bad_lines)
                res.bad.extend(BadRecord(*map(int, r)) for r in bad[:nb])
                start += used
            base += n
    # end of file: an open quote is malformed; a last record without a line end counts
    if st[_IN_Q] and not st[_Q_PEND]:
        if st[_HDR_FIELDS] < 0:
            st[_HDR_FIELDS] = st[_FIELDS] + 1
            res.bad.append(BadRecord(-1, int(st[_REC_LINE]), int(st[_REC_OFF]), base, -1))
        else:
            res.bad.append(BadRecord(int(st[_REC_IDX]), int(st[_REC_LINE]), int(st[_REC_OFF]),
                                     base, -1))
            st[_REC_IDX] += 1
    else:
        nb = _end_record(st, base, bad, 0)
        res.bad.extend(BadRecord(*map(int, r)) for r in bad[:nb])
    if st[_LINE_OFF] < base or st[_NONASCII]:
        _end_line(st, base, good_lines, bad_lines)
    res.size = base
    res.header_fields = max(int(st[_HDR_FIELDS]), 0)
    res.header_end = int(st[_HDR_END]) if st[_HDR_FIELDS] >= 0 and st[_HDR_END] else base
    res.data_rows = int(st[_REC_IDX])
    res.utf8_lines, res.non_utf8_lines = int(st[_N_U8]), int(st[_N_BAD])
    res.utf8_examples = [tuple(map(int, r)) for r in good_lines[: st[_N_GOOD_KEPT]]]
    res.non_utf8_examples = [tuple(map(int, r)) for r in bad_lines[: st[_N_BAD_KEPT]]]
    return res


def read_ranges(path: str | os.PathLike[str], ranges: list[tuple[int, int]]) -> list[bytes]:
    """The raw bytes of each ``[start, end)`` range (sorted), read in one forward pass."""
    out = []
    with open_bytes(path) as fh:
        pos = 0
        for a, b in ranges:
            if a > pos:
                fh.seek(a) if fh.seekable() else fh.read(a - pos)
            out.append(fh.read(b - a))
            pos = b
    return out


class FilteredStream(io.RawIOBase):
    """A file's bytes with some ranges left out (and optionally re-encoded to UTF-8).

    Feeds pyarrow's CSV reader only the well-formed records when malformed ones are kept
    aside; with ``decode`` (``(encoding, errors)``) it also turns the text into UTF-8.
    """

    def __init__(self, path: str | os.PathLike[str], skip: list[tuple[int, int]],
                 start: int = 0, decode: tuple[str, str] | None = None):
        import codecs

        self._fh = open_bytes(path)
        self._skip = list(skip)
        self._pos = 0
        self._k = 0
        self._dec = codecs.getincrementaldecoder(decode[0])(decode[1]) if decode else None
        self._pending = b""
        self._eof = False
        if start:
            self._fh.read(start)
            self._pos = start

    def readable(self) -> bool:
        return True

    def _raw(self, size: int) -> bytes:
        while self._k < len(self._skip) and self._skip[self._k][1] <= self._pos:
            self._k += 1
        if self._k < len(self._skip):
            a, b = self._skip[self._k]
            if a <= self._pos:
                self._fh.read(b - self._pos)
                self._pos = b
                self._k += 1
                return self._raw(size)
            size = min(size, a - self._pos)
        data = self._fh.read(size)
        self._pos += len(data)
        return data

    def read(self, size: int = -1) -> bytes:
        size = CHUNK if size is None or size < 0 else size
        while len(self._pending) < size and not self._eof:
            data = self._raw(max(size, 1 << 16))
            if not data:
                self._eof = True
                if self._dec is not None:
                    self._pending += self._dec.decode(b"", final=True).encode("utf-8")
                break
            self._pending += self._dec.decode(data).encode("utf-8") if self._dec else data
        out, self._pending = self._pending[:size], self._pending[size:]
        return out

    def readinto(self, b) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._fh.close()
        super().close()
