"""The evidence report: every metric of one check, in one object the policy and recorder read."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from drift_decider.measure.metrics.result import MetricResult


@dataclass
class EvidenceReport:
    """All measurements of one check plus what they were computed on (sizes, seed, dimensions)."""

    results: list[MetricResult]
    inputs: dict[str, Any] = field(default_factory=dict)

    def values(self) -> dict[str, float]:
        """Flat metric values, the namespace that policy conditions refer to."""
        out: dict[str, float] = {}
        for result in self.results:
            out.update(result.flat())
        return out

    def insufficient(self) -> dict[str, str]:
        """Metrics that could not be computed honestly, with the reason."""
        return {r.name: str(r.detail.get("reason", "")) for r in self.results
                if r.status == "insufficient_data"}

    def to_dict(self) -> dict[str, Any]:
        return {"inputs": self.inputs, "values": self.values(),
                "results": [r.to_dict() for r in self.results]}
