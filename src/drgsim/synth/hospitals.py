"""The region's hospitals: level, beds, volume share and efficiency."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from drgsim.synth import params as P

_TYPES = ("人民医院", "中医院", "中心医院", "妇幼保健院", "骨科医院", "肿瘤医院")
_PLACES = ("东城", "西城", "南湖", "北山", "河口", "青松", "白云", "金沙", "临江", "石门",
           "新华", "和平", "长宁", "安顺", "龙泉", "桃源")


@dataclass
class Hospitals:
    """Hospitals as arrays; ``level`` 0 三级, 1 二级, 2 一级."""

    ids: np.ndarray
    names: np.ndarray
    level: np.ndarray
    beds: np.ndarray
    efficiency: np.ndarray
    cdf: np.ndarray  # cumulative volume share, for sampling

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def arrow_ids(self) -> pa.Array:
        return pa.array(self.ids.tolist(), pa.string())

    def table(self) -> pa.Table:
        """The ``hospitals`` output table."""
        return pa.table({
            "hospital_id": pa.array(self.ids.tolist(), pa.string()),
            "name": pa.array(self.names.tolist(), pa.string()),
            "level": pa.array([P.LEVELS[i] for i in self.level], pa.string()),
            "beds": pa.array(self.beds, pa.int32()),
            "efficiency": pa.array(np.round(self.efficiency, 4), pa.float64()),
        })

    def sample(self, u: np.ndarray) -> np.ndarray:
        return np.minimum(np.searchsorted(self.cdf, u, side="right"), len(self.cdf) - 1)


def make_hospitals(n: int, seed: int) -> Hospitals:
    """``n`` hospitals with DOMAIN.md's level mix; deterministic in ``seed``."""
    if n < 1:
        raise ValueError("a region needs at least one hospital")
    rng = np.random.default_rng(np.random.SeedSequence([seed, 7_001]))
    counts = np.floor(np.array(P.LEVEL_HOSPITAL_SHARE) * n).astype(int)
    for i in np.argsort(-(np.array(P.LEVEL_HOSPITAL_SHARE) * n - counts), kind="stable"):
        if counts.sum() < n:
            counts[i] += 1
    if n >= 3:  # every level present
        for i in range(3):
            if counts[i] == 0:
                counts[i] = 1
                counts[np.argmax(counts)] -= 1
    level = np.repeat(np.arange(3), counts)
    lo = np.array([P.LEVEL_BEDS[i][0] for i in level])
    hi = np.array([P.LEVEL_BEDS[i][1] for i in level])
    beds = (lo + (hi - lo) * rng.random(n) ** 1.5).astype(np.int32)
    turnover = np.array(P.LEVEL_TURNOVER)[level] * np.exp(rng.normal(0, 0.15, n))
    volume = beds * turnover
    efficiency = np.clip(np.exp(rng.normal(0, 0.10, n)), 0.78, 1.3)
    ids = np.array([f"H{i + 1:03d}" for i in range(n)], dtype=object)
    names = []
    seq = {0: 0, 1: 0, 2: 0}
    for i, lv in enumerate(level):
        seq[lv] += 1
        place = _PLACES[i % len(_PLACES)]
        if lv == 0:
            kind = _TYPES[(seq[lv] - 1) % len(_TYPES)]
            names.append(f"示范市第{seq[lv]}{kind}" if kind == "人民医院" else f"示范市{kind}{seq[lv]}")
        elif lv == 1:
            names.append(f"{place}区{_TYPES[seq[lv] % 3]}")
        else:
            names.append(f"{place}镇卫生院{seq[lv]}")
    taken: set[str] = set()
    for i, name in enumerate(names):
        k = 2
        while names[i] in taken:
            names[i] = f"{name}{k}"
            k += 1
        taken.add(names[i])
    cdf = np.cumsum(volume)
    cdf = cdf / cdf[-1]
    cdf[-1] = 1.0
    return Hospitals(ids, np.array(names, dtype=object), level.astype(np.int8), beds,
                     efficiency, cdf)
