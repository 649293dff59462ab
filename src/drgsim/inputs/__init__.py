"""Files as hospitals hold them: GBK/GB18030 CSV, Excel extracts and column maps.

``read_input`` turns a path (CSV in any common Chinese encoding, ``.xlsx``, parquet) plus
an optional column map into an Arrow table with the neutral record columns the grouper
reads; everything else passes through.
"""

from drgsim.inputs.colmap import ColumnMap, apply_map, load_map, shipped_maps
from drgsim.inputs.encoding import detect_encoding
from drgsim.inputs.excel import NUMERIC_CODE_COLUMN, read_xlsx

__all__ = ["ColumnMap", "NUMERIC_CODE_COLUMN", "apply_map", "detect_encoding", "load_map",
           "read_xlsx", "shipped_maps"]
