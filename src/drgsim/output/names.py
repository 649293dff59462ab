"""Output column names are unique, always: an input column that collides with a column
drgsim appends is kept as ``input_<name>``, or ``input_<name>_2``, ``_3``, ... when that
name is taken too (regrouping a grouped output, whose ``drg`` then becomes ``input_drg_2``
beside the original ``input_drg``)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def input_renames(names: Sequence[str], added: Iterable[str]) -> dict[str, str]:
    """``{old: new}`` for the input columns in ``names`` that collide with ``added``."""
    added = list(added)
    taken = set(names) | set(added)
    out: dict[str, str] = {}
    for c in names:
        if c not in added:
            continue
        new, k = f"input_{c}", 2
        while new in taken:
            new, k = f"input_{c}_{k}", k + 1
        taken.add(new)
        out[c] = new
    return out


def rename_inputs(names: Sequence[str], added: Iterable[str]) -> list[str]:
    """``names`` with the columns colliding with ``added`` renamed (see :func:`input_renames`)."""
    m = input_renames(names, added)
    return [m.get(c, c) for c in names]
