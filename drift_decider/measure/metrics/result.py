"""The result type every metric returns."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from drift_decider.measure.metric_names import spec_of

Status = Literal["ok", "insufficient_data"]


@dataclass(frozen=True)
class MetricResult:
    """One measurement: a value, a p-value when the metric is a test, and details that explain it.

    ``status == "insufficient_data"`` means the metric could not be computed honestly (too few rows);
    then ``value`` and ``p_value`` are None and ``detail["reason"]`` says why.
    """

    name: str
    value: float | None
    p_value: float | None = None
    status: Status = "ok"
    detail: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Every name is a catalogue row, and only the catalogue's tests carry a p-value: what a policy
        may name and what the metric code produces cannot drift apart."""
        if not spec_of(self.name).test and self.p_value is not None:
            raise ValueError(f"metric {self.name!r} is not a test in the catalogue, yet carries a p-value")

    @classmethod
    def insufficient(cls, name: str, reason: str, **detail: Any) -> "MetricResult":
        return cls(name=name, value=None, p_value=None, status="insufficient_data",
                   detail={"reason": reason, **detail})

    def flat(self) -> dict[str, float]:
        """Flat ``{key: float}`` for MLflow and policies: ``name`` and ``name.p_value``."""
        if self.status != "ok" or self.value is None or not math.isfinite(self.value):
            return {}
        out = {self.name: float(self.value)}
        if self.p_value is not None:
            out[f"{self.name}.p_value"] = float(self.p_value)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "value": self.value, "p_value": self.p_value,
                "status": self.status, "detail": self.detail}
