"""How DIP-like a region's case mix is: packets, core packets and the share of cases in them.

A DIP packet key is the principal diagnosis at the subcategory level (its first five
characters, the part before ``+`` of a dagger-asterisk code) times the order-free set of the
case's procedures (DIP.md, version 1.0); a key with at least ``core_threshold`` cases is a
core packet. This is a measurement of the synthetic region (DIP.md: a city catalogue holds
3,000-12,000 packets and core packets cover most cases), not the catalogue builder of
:mod:`drgsim.dip`.

    python -m drgsim.synth.concentration                 # the default region's history years
    python -m drgsim.synth.concentration --discharges 300000 --years 2022-2024
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc


@dataclass(frozen=True)
class Concentration:
    """Packet counts of a set of cases (see the module docstring)."""

    cases: int
    packets: int
    core_packets: int
    core_cases: int
    conservative_core: int
    core_threshold: int

    @property
    def core_share(self) -> float:
        """Share of cases in core packets."""
        return self.core_cases / self.cases if self.cases else 0.0

    def line(self) -> str:
        return (f"cases={self.cases:,} packets={self.packets:,} "
                f"core_packets(>={self.core_threshold})={self.core_packets:,} "
                f"(conservative {self.conservative_core:,}) "
                f"core_share={self.core_share:.1%}")


def packet_keys(diagnoses: pa.Array | pa.ChunkedArray,
                procedures: pa.Array | pa.ChunkedArray, dx_chars: int = 5) -> pd.DataFrame:
    """One row per case: ``dx`` (principal diagnosis key) and ``p0..pK`` (the case's distinct
    procedure codes as sorted ids, -1 padded): equal rows are the same packet key."""
    if isinstance(diagnoses, pa.ChunkedArray):
        diagnoses = diagnoses.combine_chunks()
    if isinstance(procedures, pa.ChunkedArray):
        procedures = procedures.combine_chunks()
    dx_full = pc.list_element(pc.split_pattern(pc.fill_null(diagnoses, ""), "|"), 0)
    dx_main = pc.list_element(pc.split_pattern(dx_full, "+"), 0)
    dx = pc.utf8_slice_codeunits(pc.utf8_trim_whitespace(dx_main), 0, dx_chars)
    lists = pc.split_pattern(pc.fill_null(procedures, ""), "|")
    flat = pc.utf8_trim_whitespace(pc.list_flatten(lists))
    parent = np.asarray(pc.list_parent_indices(lists), dtype=np.int64)
    keep = np.asarray(pc.not_equal(flat, ""), dtype=bool)
    ids = np.asarray(pc.dictionary_encode(flat).indices, dtype=np.int64)[keep]
    parent = parent[keep]
    n = len(dx)
    order = np.lexsort((ids, parent))
    ids, parent = ids[order], parent[order]
    first = np.ones(len(ids), bool)
    first[1:] = (parent[1:] != parent[:-1]) | (ids[1:] != ids[:-1])  # drop repeats
    ids, parent = ids[first], parent[first]
    starts = np.zeros(len(ids), bool)
    starts[:1] = True
    starts[1:] = parent[1:] != parent[:-1]
    run = np.flatnonzero(starts)
    pos = np.arange(len(ids)) - np.repeat(run, np.diff(np.append(run, len(ids))))
    width = int(pos.max()) + 1 if len(pos) else 0
    mat = np.full((max(width, 1), n), -1, np.int64)
    mat[pos, parent] = ids
    cols = {"dx": np.asarray(pc.dictionary_encode(pc.fill_null(dx, "")).indices, np.int64)}
    cols.update({f"p{k}": mat[k] for k in range(mat.shape[0])})
    return pd.DataFrame(cols)


def concentration(diagnoses: pa.Array | pa.ChunkedArray, procedures: pa.Array | pa.ChunkedArray,
                  core_threshold: int = 15, dx_chars: int = 5) -> Concentration:
    """Packets, core packets and their share of cases (see the module docstring)."""
    keys = packet_keys(diagnoses, procedures, dx_chars)
    sizes = keys.groupby(list(keys.columns), sort=False).size()
    core = sizes[sizes >= core_threshold]
    conservative = core.index.get_level_values("p0") < 0
    return Concentration(cases=len(keys), packets=len(sizes), core_packets=len(core),
                         core_cases=int(core.sum()), conservative_core=int(conservative.sum()),
                         core_threshold=core_threshold)


def region_concentration(discharges: int, years: Sequence[int], history: Iterable[int],
                         hospitals: int = 120, seed: int = 0, dirty_rate: float = 0.01,
                         core_threshold: int = 15) -> Concentration:
    """:func:`concentration` of the ``history`` years of a synthetic region."""
    from drgsim.synth.region import SyntheticRegion  # noqa: PLC0415

    reg = SyntheticRegion(discharges, hospitals, years, seed, dirty_rate)
    want = set(history)
    dx, px = [], []
    for month, table in reg.iter_blocks():
        if month.year in want:
            dx.append(table.column("diagnoses"))
            px.append(table.column("procedures"))
    return concentration(pa.chunked_array([c for d in dx for c in d.chunks], pa.string()),
                         pa.chunked_array([c for p in px for c in p.chunks], pa.string()),
                         core_threshold)


def _years(text: str) -> list[int]:
    if "-" in text:
        a, b = text.split("-")
        return list(range(int(a), int(b) + 1))
    return [int(y) for y in text.split(",")]


def main(argv: Sequence[str] | None = None) -> None:
    from drgsim.synth import params as P  # noqa: PLC0415

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--discharges", type=int, default=P.DEFAULT_DISCHARGES,
                    help="discharges over all years of the region")
    ap.add_argument("--years", default=f"{P.DEFAULT_YEARS[0]}-{P.DEFAULT_YEARS[-1]}")
    ap.add_argument("--history", default=None,
                    help="years measured (default: all but the last, i.e. the history)")
    ap.add_argument("--hospitals", type=int, default=P.DEFAULT_HOSPITALS)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--core-threshold", type=int, default=15)
    args = ap.parse_args(argv)
    years = _years(args.years)
    history = _years(args.history) if args.history else years[:-1] or years
    c = region_concentration(args.discharges, years, history, args.hospitals, args.seed,
                             P.DEFAULT_DIRTY_RATE, args.core_threshold)
    print(f"region discharges={args.discharges:,} years={years[0]}-{years[-1]} "
          f"history={history[0]}-{history[-1]} seed={args.seed}")
    print(c.line())


if __name__ == "__main__":
    main()
