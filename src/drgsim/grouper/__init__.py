"""CHS-DRG grouping over scheme tables: the public ``group`` function and its parts."""

from drgsim.grouper.core import GroupResult, GroupSummary, group, group_arrow, load_scheme

__all__ = ["GroupResult", "GroupSummary", "group", "group_arrow", "load_scheme"]
