"""Calibration targets and behavioural constants of the synthetic region (DOMAIN.md figures)."""

from __future__ import annotations

import numpy as np

#: DOMAIN.md: mean cost per inpatient case (yuan) and mean LOS (days).
TARGET_MEAN_COST = 10_300.0
TARGET_MEAN_LOS = 8.8
#: DOMAIN.md: a prefecture of ~4 million insured with ~120 hospitals, ~600k discharges a year.
DEFAULT_HOSPITALS = 120
DISCHARGES_PER_YEAR = 600_000
INSURED_PER_DISCHARGE = 4_000_000 / DISCHARGES_PER_YEAR
#: three years of history plus a simulation year
DEFAULT_YEARS = (2022, 2023, 2024, 2025)
DEFAULT_DISCHARGES = DISCHARGES_PER_YEAR * len(DEFAULT_YEARS)
DEFAULT_DIRTY_RATE = 0.01

#: rows drawn from one random stream; fixed, so chunk sizes never change the data
BLOCK_ROWS = 65_536

LEVELS = ("三级", "二级", "一级")
#: share of hospitals, bed ranges and yearly discharges per bed, by level
LEVEL_HOSPITAL_SHARE = (0.15, 0.45, 0.40)
LEVEL_BEDS = ((800, 2500), (200, 700), (30, 150))
LEVEL_TURNOVER = (30.0, 32.0, 25.0)
#: cost and LOS factors by level (tertiary dearer and slower, primary cheaper)
LEVEL_COST = np.array([1.22, 0.92, 0.72])
LEVEL_LOS = np.array([1.06, 0.97, 0.90])
#: share of cases with an effective MCC / CC (before the age effect), by level
LEVEL_MCC = np.array([0.14, 0.09, 0.05])
LEVEL_CC = np.array([0.25, 0.21, 0.15])
#: share of cases whose only CC/MCC is excluded by the principal's exclusion table
EXCLUDED_SHARE = 0.05
SEVERITY_COST = np.array([1.0, 1.35, 1.9])
SEVERITY_LOS = np.array([1.0, 1.2, 1.55])

#: yearly cost inflation and case-volume growth
INFLATION = 0.035
VOLUME_GROWTH = 0.04
#: monthly seasonality (Spring Festival dip in February, Golden Week in October)
SEASONALITY = np.array([1.02, 0.80, 1.05, 1.00, 1.00, 1.00, 1.04, 1.03, 0.99, 0.93, 1.03, 1.08])

#: discharge modes 1 advice, 2 transferred, 3 community, 4 against advice, 5 died, 9 other
DISCHARGE_MODES = np.array([1, 2, 3, 4, 5, 9])
DISCHARGE_P = np.array([0.905, 0.022, 0.010, 0.030, 0.008, 0.025])
DEATH_EXTRA_MCC = 0.03
#: shares of low-cost (short stay, early discharge) and high-cost outliers injected
LOW_SHARE = 0.015
LOW_SHARE_EARLY_EXIT = 0.5  # of transfers, against-advice discharges and deaths
HIGH_SHARE = 0.008
#: per-diem candidates: share of psychiatric/rehab cases that are long stays; yuan a day
LONG_STAY_SHARE = 0.3
PER_DIEM_COST = (300.0, 650.0)

#: share of cases whose procedures are not their diagnosis' typical ones but drawn from the
#: whole ADRG's combinations and filler procedures (the long tail of a DIP catalogue)
ATYPICAL_PROC_SHARE = 0.12

#: follow-up admissions (same patient again in the same month's block)
FOLLOWUP_SHARE = 0.045
FOLLOWUP_KINDS = ("readmission", "near_16_days", "near_other_hospital", "near_other_adrg")
FOLLOWUP_P = np.array([0.60, 0.14, 0.13, 0.13])
READMIT_DAYS = 15

FUNDS = ("employee", "resident")
#: share of adult cases insured by the employee fund (children are residents); tuned so the
#: employee fund pays ~40% of DRG spending (Guizhou 2020: 174.44 of 431.08 亿)
EMPLOYEE_ADULT_SHARE = 0.42
#: share of insured persons in the employee fund (our assumption; Guizhou 2020 11%)
EMPLOYEE_INSURED_SHARE = 0.25
INSURED_GROWTH = 0.005
#: deductible (yuan) and in-policy reimbursement rate by fund and level
DEDUCTIBLE = np.array([[800, 500, 300], [1000, 600, 300]])
REIMBURSE = np.array([[0.86, 0.89, 0.91], [0.74, 0.80, 0.86]])
#: out-of-list self-pay share (mean) of the total cost
SELF_PAY_SHARE = 0.07
#: cost structure shares (drugs, consumables, exams; services are the rest) by ADRG kind
COST_SHARES = np.array([[0.26, 0.28, 0.16], [0.30, 0.18, 0.22], [0.36, 0.08, 0.24]])

#: DOMAIN.md demo-region assumption: DRG/DIP inpatient care is ~55% of each fund's
#: spending, and the fund ends the year slightly in surplus.
DRG_SHARE_OF_SPENDING = 0.55
FUND_SURPLUS = (0.04, 0.015)
