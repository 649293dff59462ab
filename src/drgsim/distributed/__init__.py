"""Engine-neutral pieces a distributed engine (Dask, Spark) drives: no second implementation.

An adapter (``drgsim.dask``, ``drgsim.spark``) holds partitioning and I/O only; what it runs
on a partition and on the driver is here, and that is the single-machine code:

- **Grouping** (any partition): :func:`group_frame` / :func:`group_table` run
  ``drgsim.grouper.group_arrow`` (the numba kernel) on one partition; only the status
  counts reduce (:func:`status_counts`).
- **Pricing and cells** (one *hospital* partition: every row of a hospital, all years, in
  one partition — readmission linking, the special-review share, hospital cost indices
  and case-id tie-breaks are per hospital and year): :func:`price_partition` calls
  :func:`drgsim.scenarios.prepare.price_rows` and returns a :class:`PartitionPriced`
  whose :meth:`~PartitionPriced.summary` (hospital × fund × month totals, per diem
  outside the budget, last year's spending, hospital ids seen) is all the driver gathers.
  :func:`check_disjoint` refuses partitions that share a hospital.
- **Driver** (global): :func:`combine` adds the summaries onto one hospital axis, then
  :func:`driver_prepared` builds a :class:`~drgsim.scenarios.prepare.Prepared` from them,
  so the single-machine settlement (``Prepared.simulate``-like :func:`settle_driver`) and
  sweep (``Prepared.sweep``) run unchanged; the sweep's re-pricing (cells, rows,
  recalibration, behaviour draws) runs on the partitions (:mod:`drgsim.distributed.sweep`). Budgets are
  global; weights are given, or calibrated exactly by a shuffle by DRG
  (:mod:`drgsim.distributed.calibrate`: per-DRG partial sums, the driver assembles).
- **Per-case split back** (per hospital partition): :func:`pay_partition` with the
  broadcast hospital-month payments (:func:`payments_of`); :func:`finish_tables` puts
  its small parts (hospital indices, DRG and pay-status sums) into the driver's tables.

An adapter's simulate is, in order: number the rows in input order (:data:`ROW`); find the
year and check the inputs (driver); weights (given, or calibrated by DRG shuffle); shuffle
by hospital; ``price_partition`` per partition (keep the result on the worker); gather
``summary()``; :func:`global_hospitals` + :func:`combine`; :func:`driver_prepared`;
:func:`settle_driver`; broadcast :func:`payments_of`; :func:`pay_partition` per partition;
:func:`finish_tables`. ``drgsim.dask`` is the reference implementation.
- **DIP matching** (any partition): :func:`drgsim.distributed.dip.match_table` /
  :func:`~drgsim.distributed.dip.match_frame` run ``drgsim.dip.match``'s Arrow path on
  one partition with a catalogue the adapter ships once (scatter / broadcast).
- **DIP pricing** and **history-derived point values**: the weights from every partition's
  pricing keys (:mod:`drgsim.distributed.dip`); PV_b, the reimbursement ratio and last
  year's point value from per-hospital parts reduced on the driver
  (:mod:`drgsim.distributed.history`).
- **Output**: :mod:`drgsim.distributed.output` writes partitioned parquet
  (``year=/month=``) part by part, atomically, fingerprinted, manifest last, and the
  provenance sidecar ``_drgsim_provenance.json`` (engines that drop Arrow metadata).
"""

from __future__ import annotations

from drgsim.distributed import partition as _partition
from drgsim.distributed.partition import *  # noqa: F403  (the names below, one list)

__all__ = list(_partition.__all__)
