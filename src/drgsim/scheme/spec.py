"""The scheme table format as data: files, columns, their types and keys.

This mirrors ``grouper_tables/chs_drg_11/README.md`` section 2. The loader checks every
table against it, so a column drgsim would silently ignore is an error, not a mis-group.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Column:
    """One column of a scheme table and the values it may hold (empty = no condition)."""

    name: str
    kind: str = "text"  # text | code | int | flag | enum | expr
    required: bool = False  # the column must be present in the file
    nonempty: bool = False  # every cell must be filled
    choices: tuple[str, ...] = ()
    min_value: int | None = None


@dataclass(frozen=True)
class TableSpec:
    file: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    required_file: bool = True
    doc: str = ""
    names: tuple[str, ...] = field(init=False, default=())

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", tuple(c.name for c in self.columns))

    def column(self, name: str) -> Column:
        return self.columns[self.names.index(name)]


def _req(name: str, kind: str = "text", **kw) -> Column:
    return Column(name, kind, required=True, nonempty=True, **kw)


def _bounds(*fields: str) -> tuple[Column, ...]:
    return tuple(Column(f"{f}_{end}", "int") for f in fields for end in ("min", "max"))


FLAG = ("0", "1")

TABLES: dict[str, TableSpec] = {
    t.file: t
    for t in (
        TableSpec(
            "scheme.csv",
            (_req("key"), Column("value", required=True)),
            key=("key",),
            doc="metadata: name, version, source, licence, mdc_order",
        ),
        TableSpec(
            "mdc.csv",
            (
                _req("mdc"),
                _req("label"),
                _req("order", "int", min_value=1),
                Column("name_zh"),
                Column("dx_match", "enum", choices=("principal", "any")),
                Column("main_proc_or", "flag", choices=FLAG),
                Column("sex", "enum", choices=("1", "2")),
                *_bounds("age_years"),
                Column("min_trauma_regions", "int", min_value=1),
                Column("qy_enabled", "flag", choices=FLAG),
                Column("qy_rule", "enum", choices=("any_proc_or",)),
            ),
            key=("mdc",),
        ),
        TableSpec(
            "mdc_principal_dx.csv",
            (_req("mdc"), _req("code", "code"), Column("trauma_region")),
            key=("mdc", "code"),
        ),
        TableSpec(
            "adrg.csv",
            (
                _req("rule_id"),
                _req("adrg"),
                _req("mdc"),
                _req("order", "int", min_value=1),
                Column("kind", "enum", choices=("surgical", "non_or_procedure", "medical")),
                Column("name_zh"),
                Column("dx_match", "enum", choices=("principal", "any", "secondary")),
                Column("dx2_match", "enum", choices=("principal", "any", "secondary")),
                Column("proc_match", "enum", choices=("main", "any")),
                Column("proc2_match", "enum", choices=("main", "any")),
                Column("or_proc", "enum", choices=("main", "any", "none")),
                Column("proc_groups", "expr"),
                Column("has_proc", "flag", choices=FLAG),
                Column("age_days_required", "flag", choices=FLAG),
                Column("weight_required", "flag", choices=FLAG),
                *_bounds("age_days", "weight_g", "age_years", "los_days"),
            ),
            key=("rule_id",),
        ),
        TableSpec(
            "adrg_codes.csv",
            (
                _req("rule_id"),
                _req("list", "enum", choices=("dx", "dx2", "proc", "proc2")),
                _req("code", "code"),
                Column("proc_group"),
            ),
            key=("rule_id", "list", "code"),
        ),
        TableSpec(
            "drg.csv",
            (
                _req("drg"),
                _req("adrg"),
                _req("order", "int", min_value=1),
                Column("severity"),
                Column("name_zh"),
                Column("cc_rule", "enum", choices=("mcc", "mcc_or_cc", "cc")),
                Column("min_dx_count", "int", min_value=0),
                *_bounds("age_years", "los_days"),
            ),
            key=("drg",),
        ),
        TableSpec(
            "cc.csv",
            (_req("code", "code"), _req("level", "enum", choices=("MCC", "CC")),
             Column("exclusion_table")),
            key=("code",),
        ),
        TableSpec(
            "cc_exclusion.csv",
            (_req("code", "code"), _req("exclusion_table")),
            key=("code",),
        ),
        TableSpec("or_procedure.csv", (_req("code", "code"), Column("name_zh")), key=("code",)),
        TableSpec(
            "icd10.csv", (_req("code", "code"), Column("name_zh")), key=("code",),
            required_file=False,
        ),
        TableSpec(
            "icd9.csv", (_req("code", "code"), Column("name_zh")), key=("code",),
            required_file=False,
        ),
        TableSpec(
            "dx_map.csv",
            (_req("code", "code"), Column("target", "code", required=True)),
            key=("code",),
            required_file=False,
        ),
        TableSpec(
            "proc_map.csv",
            (_req("code", "code"), Column("target", "code", required=True)),
            key=("code",),
            required_file=False,
        ),
        TableSpec(
            "statuses.csv",
            (
                _req("status"),
                Column("opendrg_text"),
                Column("opendrg_enum"),
                Column("emitted", "flag", choices=FLAG),
                Column("meaning"),
            ),
            key=("status",),
            required_file=False,
        ),
    )
}

# Statuses the algorithm emits (scheme README section 4.4), in output-id order; then
# ``malformed_row``: a CSV row kept by ``--bad-lines keep`` (wrong field count or an
# unterminated quote), never grouped (mdc/adrg empty, DRG ``0000``).
STATUSES = (
    "ok",
    "ungroupable",
    "ambiguous_qy",
    "check_failed",
    "dx_not_mappable",
    "proc_not_mappable",
    "malformed_row",
)
