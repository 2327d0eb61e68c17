"""The model's own noise floor: what a refit that saw no new data does to each metric.

A value such as "24 % of neighbour relations are new" means nothing alone: refitting the same
model on the same data with another seed, or on a subsample of it, already moves neighbourhoods,
and by how much depends on the model. Teams have such refits (siblings). Every paired metric is
measured between the reference and each sibling; the floor of a metric is the sibling value
farthest from the metric's no-change value. A check then publishes, beside each metric,
``<name>.noise_units``: its distance from the no-change value in units of that floor (1 = as far
as the worst refit; 3 = three times as far), and ``<name>.noise_floor``, the floor itself, so a
policy can say "three times this model's own refit noise" instead of a constant. A version without
siblings can take its floor from a baseline period of healthy checks instead (``reference noise``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np

from drift_decider.measure.metric_names import ideal_value
from drift_decider.measure.metrics.result import MetricResult

UNITS_SUFFIX = ".noise_units"
FLOOR_SUFFIX = ".noise_floor"
SMALLEST_FLOOR = 1e-6   # a floor of 0 (a bit-identical refit) still gives finite units


@dataclass(frozen=True)
class Sibling:
    """The reference's items embedded by a refit that saw no new data (another seed, a bootstrap or
    subsample of the training set), with the reference queries embedded by that refit if available."""

    ids: np.ndarray
    vectors: np.ndarray
    queries: np.ndarray | None = None


@dataclass(frozen=True)
class NoiseFloor:
    """Per metric, the values measured between the reference and each sibling (or baseline check)."""

    source: str                                  # "siblings" or "baseline checks"
    samples: dict[str, tuple[float, ...]]

    @property
    def count(self) -> int:
        return max((len(v) for v in self.samples.values()), default=0)

    @property
    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()

    @property
    def label(self) -> str:
        """How a decision record names the floor it was judged against."""
        return f"{self.count} {self.source} sha256:{self.digest[:12]}"

    def floor(self, name: str) -> float | None:
        """The sibling value farthest from the no-change value, or None when not measured."""
        ideal, values = ideal_value(name), self.samples.get(name)
        if ideal is None or not values:
            return None
        return max(values, key=lambda v: abs(v - ideal))

    def companions(self, results: Iterable[MetricResult]) -> list[MetricResult]:
        """``<name>.noise_units`` and ``<name>.noise_floor`` for every result that has a floor."""
        out: list[MetricResult] = []
        for result in results:
            floor = self.floor(result.name)
            if floor is None or result.status != "ok" or result.value is None:
                continue
            ideal = ideal_value(result.name)
            spread = max(abs(floor - ideal), SMALLEST_FLOOR)
            detail = {"floor": floor, "no_change_value": ideal, "siblings": self.count, "floor_id": self.label}
            out.append(MetricResult(result.name + UNITS_SUFFIX, abs(result.value - ideal) / spread, detail=detail))
            out.append(MetricResult(result.name + FLOOR_SUFFIX, floor, detail=detail))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "samples": {k: list(v) for k, v in sorted(self.samples.items())}}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "NoiseFloor":
        return cls(str(raw["source"]), {str(k): tuple(float(x) for x in v) for k, v in raw["samples"].items()})

    @classmethod
    def from_measurements(cls, source: str, per_sibling: list[dict[str, float]]) -> "NoiseFloor":
        """One ``{metric: value}`` per sibling; metrics without a no-change value are left out."""
        names = sorted({n for values in per_sibling for n in values if ideal_value(n) is not None})
        return cls(source, {n: tuple(v[n] for v in per_sibling if n in v) for n in names})
