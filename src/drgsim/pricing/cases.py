"""Grouped cases -> integer-coded arrays the pricing and settlement kernels work on.

Column names are tolerant (aliases below, or an explicit ``columns`` mapping); money is
read from yuan into integer fen once; every row keeps a ``pay_status`` reason instead of
being dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from drgsim.errors import MissingColumnError
from drgsim.pricing.money import yuan_to_fen
from drgsim.scheme.spec import STATUSES  # the grouper's statuses: one source of truth

FUNDS = ("employee", "resident")
FUND_ALIASES = {
    "employee": 0,
    "职工": 0,
    "urban_employee": 0,
    "uebmi": 0,
    "e": 0,
    "1": 0,
    "resident": 1,
    "居民": 1,
    "urban_rural_resident": 1,
    "urrbmi": 1,
    "r": 1,
    "2": 1,
}
PAY_STATUSES = (
    "ok",
    "missing_cost",
    "negative_cost",
    "unknown_hospital",
    "unknown_fund",
    "bad_date",
    "held_for_review",
    "no_weight",
    "unknown_status",
    "implausible_cost",
    "implausible_los",
)

ALIASES: dict[str, tuple[str, ...]] = {
    "case_id": ("case_id", "id"),
    "patient_id": ("patient_id", "person_id"),
    "hospital_id": ("hospital_id", "hospital"),
    "fund": ("fund", "insurance", "insurance_type"),
    "admit_date": ("admit_date", "admission_date", "admit"),
    "discharge_date": ("discharge_date", "discharge", "disch_date"),
    "total_cost": ("total_cost", "cost", "total_cost_yuan"),
    "los_days": ("los_days", "los"),
    "drg": ("drg",),
    "adrg": ("adrg",),
    "mdc": ("mdc",),
    "status": ("status",),
    "patient_share": ("patient_share", "patient_pay", "self_total"),
    "special_review": ("special_review",),
}
# DIP cases (drgsim.dip.price.dip_frame) carry these beside the case key; kept in
# ``Cases.extra`` and shown in the priced cases table
DIP_CASE_COLUMNS = ("packet", "packet_kind", "aux_catalogue", "aux_class", "aux_coef", "dip_status")
# summed into the patients' share when no single patient_share column exists
SHARE_PARTS = (
    "deductible",
    "coinsurance",
    "copay",
    "self_pay",
    "out_of_list",
    "self_pay_out_of_list",
    "over_cap",
)


def _col(df: pd.DataFrame, name: str, columns: dict[str, str] | None) -> str | None:
    if columns and name in columns:
        c = columns[name]
        if c not in df.columns:
            raise MissingColumnError(f"column {c!r} (given for {name}) is not in the cases")
        return c
    for a in ALIASES.get(name, (name,)):
        if a in df.columns:
            return a
    return None


def _days(s: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Dates -> (days since 1970-01-01 as int64, valid mask)."""
    d = pd.to_datetime(s, errors="coerce")
    valid = ~d.isna().to_numpy()
    days = np.zeros(len(s), dtype=np.int64)
    days[valid] = d[valid].to_numpy().astype("datetime64[D]").astype(np.int64)
    return days, valid


@dataclass
class Cases:
    """Integer-coded cases. Index arrays point into the name lists beside them."""

    n: int
    case_id: np.ndarray
    tie: np.ndarray  # rank of case_id: the tie-break order of largest-remainder splits
    hosp: np.ndarray  # int32 index into hospital_ids; -1 unknown
    hospital_ids: np.ndarray
    fund: np.ndarray  # int8: 0 employee, 1 resident, -1 unknown
    year: np.ndarray  # int16
    month: np.ndarray  # int8 0..11
    drg: np.ndarray  # int32 index into drg_names
    drg_names: np.ndarray
    adrg_names: np.ndarray  # per drg_names entry... per case via adrg index
    adrg: np.ndarray
    mdc: np.ndarray
    mdc_names: np.ndarray
    status: np.ndarray  # int8 index into STATUSES; -1 unknown
    cost_fen: np.ndarray
    share_fen: np.ndarray
    los: np.ndarray
    patient: np.ndarray  # int64 code
    admit_day: np.ndarray
    disch_day: np.ndarray
    special_flag: np.ndarray
    pay_status: np.ndarray  # int8 index into PAY_STATUSES (input problems only)
    tie_order: np.ndarray = None  # type: ignore[assignment]  # rows by case id
    by_patient: np.ndarray = None  # type: ignore[assignment]  # rows by (patient, admit day, case id)
    link_only: np.ndarray = None  # type: ignore[assignment]  # bool: last year's, for readmission links
    hosp_raw: np.ndarray = None  # type: ignore[assignment]  # the id as given (unknown ones too)
    extra: dict = field(default_factory=dict)

    def take(self, mask: np.ndarray) -> Cases:
        """The cases where ``mask`` holds (name lists kept)."""
        kw = {}
        for k, v in self.__dict__.items():
            if (
                isinstance(v, np.ndarray)
                and len(v) == self.n
                and k not in ("hospital_ids", "drg_names", "adrg_names", "mdc_names")
            ):
                kw[k] = v[mask]
            else:
                kw[k] = v
        kw["n"] = int(np.count_nonzero(mask))
        kw["extra"] = {
            k: v[mask] if isinstance(v, np.ndarray) and len(v) == self.n else v
            for k, v in self.extra.items()
        }
        out = Cases(**kw)
        out.index()
        return out

    def index(self) -> None:
        """Orders used by the kernels, computed once at load (case id; patient, admit day)."""
        self.tie_order = np.argsort(self.tie, kind="stable")
        self.by_patient = patient_order(self.patient, self.admit_day, self.tie)


def patient_order(patient: np.ndarray, day: np.ndarray, tie: np.ndarray) -> np.ndarray:
    """Rows by (patient, admit day, case id): one int64 argsort when the keys pack in 63 bits."""
    n = len(patient)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    p = patient.astype(np.int64) + 1
    d = day.astype(np.int64) - int(day.min())
    t = tie.astype(np.int64)
    bits = [max(1, int(x.max()).bit_length()) for x in (p, d, t)]
    if sum(bits) > 63:
        return np.lexsort((tie, day, patient))
    key = (p << (bits[1] + bits[2])) | (d << bits[2]) | t
    return np.argsort(key, kind="stable")


def _codes(s: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    codes, uniq = pd.factorize(s.astype("string").fillna(""), sort=True)
    return codes.astype(np.int32), np.asarray(uniq, dtype=object)


def prepare_cases(
    df: pd.DataFrame,
    hospital_ids: np.ndarray | list | None = None,
    columns: dict[str, str] | None = None,
    link_only: np.ndarray | None = None,
) -> Cases:
    """Code a grouped-cases frame for pricing; never drops a row.

    ``hospital_ids``: the known hospitals (the hospitals table); a case from another is
    ``unknown_hospital``. Without it every hospital in the cases is known. ``link_only``:
    rows (last year's discharges) that only serve readmission linking; pricing drops them.
    """
    n = len(df)
    need = ["hospital_id", "fund", "discharge_date", "total_cost", "drg", "status"]
    missing = [c for c in need if _col(df, c, columns) is None]
    if missing:
        raise MissingColumnError(
            f"cases lack column(s) {', '.join(missing)} (see drgsim.pricing.cases.ALIASES)"
        )
    pay = np.zeros(n, dtype=np.int8)

    def flag(mask: np.ndarray, name: str) -> None:
        pay[(pay == 0) & mask] = PAY_STATUSES.index(name)

    cid_col = _col(df, "case_id", columns)
    case_id = df[cid_col].to_numpy() if cid_col else np.arange(n)
    if cid_col and df[cid_col].dtype.kind in "iu":
        tie = np.argsort(np.argsort(case_id, kind="stable"), kind="stable")
    else:
        tie, _ = pd.factorize(pd.Series(case_id).astype("string"), sort=True)
    tie = np.asarray(tie, dtype=np.int64)

    # money
    cost, cost_ok = yuan_to_fen(df[_col(df, "total_cost", columns)])
    share_col = _col(df, "patient_share", columns)
    if share_col is not None:
        share, share_ok = yuan_to_fen(df[share_col])
        share_ok |= df[share_col].isna().to_numpy()  # missing share = the patient paid nothing
        share = np.where(share_ok, share, 0)
    else:
        share = np.zeros(n, dtype=np.int64)
        for part in SHARE_PARTS:
            if part in df.columns:
                f, ok = yuan_to_fen(df[part])
                share += np.where(ok, f, 0)
    flag(~cost_ok, "missing_cost")
    flag(cost < 0, "negative_cost")
    flag(share < 0, "negative_cost")

    # hospitals
    hcol = df[_col(df, "hospital_id", columns)].astype("string")
    if hospital_ids is None:
        hs = np.asarray(sorted(hcol.dropna().unique()), dtype=object)
    else:
        hs = np.asarray(sorted(pd.Series(hospital_ids).astype("string").unique()), dtype=object)
    hosp = pd.Index(hs).get_indexer(hcol.fillna("\x00")).astype(np.int32)
    flag(hosp < 0, "unknown_hospital")

    # fund
    fraw = df[_col(df, "fund", columns)].astype("string").str.strip().str.lower()
    fund = fraw.map(FUND_ALIASES).fillna(-1).to_numpy().astype(np.int8)
    flag(fund < 0, "unknown_fund")

    # dates
    disch, dok = _days(df[_col(df, "discharge_date", columns)])
    adm_col = _col(df, "admit_date", columns)
    los_col = _col(df, "los_days", columns)
    los = np.zeros(n, dtype=np.int64)
    if los_col is not None:
        los = pd.to_numeric(df[los_col], errors="coerce").fillna(-1).to_numpy().astype(np.int64)
    if adm_col is not None:
        admit, aok = _days(df[adm_col])
        admit = np.where(aok, admit, disch - np.maximum(los, 0))
        if los_col is None:
            los = np.where(aok, disch - admit, 0)
    else:
        admit = disch - np.maximum(los, 0)
    flag(~dok, "bad_date")
    dts = disch.astype("datetime64[D]")
    year = dts.astype("datetime64[Y]").astype(np.int64) + 1970
    month = dts.astype("datetime64[M]").astype(np.int64) % 12

    # grouping
    st = df[_col(df, "status", columns)].astype("string").fillna("")
    status = pd.Index(STATUSES).get_indexer(st).astype(np.int8)
    flag(status < 0, "unknown_status")
    drg, drg_names = _codes(df[_col(df, "drg", columns)])
    acol, mcol = _col(df, "adrg", columns), _col(df, "mdc", columns)
    adrg, adrg_names = _codes(df[acol] if acol else pd.Series([""] * n))
    mdc, mdc_names = _codes(df[mcol] if mcol else pd.Series([""] * n))

    pcol = _col(df, "patient_id", columns)
    if pcol:  # a missing patient id links to nothing
        pser = df[pcol]
        if pser.dtype.kind not in "iu":
            pser = pser.astype("string").str.strip().replace("", pd.NA)
        patient = pd.factorize(pser, use_na_sentinel=True)[0].astype(np.int64)
    else:
        patient = np.full(n, -1, dtype=np.int64)
    scol = _col(df, "special_review", columns)
    special = df[scol].fillna(False).astype(bool).to_numpy() if scol else np.zeros(n, dtype=bool)

    out = Cases(
        n=n,
        case_id=case_id,
        tie=tie,
        hosp=hosp,
        hospital_ids=hs,
        fund=fund,
        year=year.astype(np.int16),
        month=month.astype(np.int8),
        drg=drg,
        drg_names=drg_names,
        adrg_names=adrg_names,
        adrg=adrg,
        mdc=mdc,
        mdc_names=mdc_names,
        status=status,
        cost_fen=np.where(cost_ok, cost, 0).astype(np.int64),
        share_fen=share.astype(np.int64),
        los=los.astype(np.int32),
        patient=patient,
        admit_day=admit.astype(np.int32),
        disch_day=disch.astype(np.int32),
        special_flag=special,
        pay_status=pay,
        link_only=np.zeros(n, bool) if link_only is None else np.asarray(link_only, bool),
        hosp_raw=hcol.to_numpy(dtype=object, na_value=None),
        extra={c: df[c].to_numpy() for c in DIP_CASE_COLUMNS if c in df.columns},
    )
    out.index()
    return out
