"""Random-feature and projection sketches: mergeable sums that see every row of a set.

The profile's row sample keeps the permutation and KS tests exact, but it sees at most
``sample_rows`` rows. The sketches here are sums over *all* rows, so a reference of a million
vectors is compared in full, in bounded memory, and they merge exactly like the moments:

- Random Fourier features of a Gaussian kernel (Rahimi & Recht 2007): the mean feature vector of a
  set approximates its kernel mean embedding, so the distance between two sets' feature means
  estimates MMD², and the features' second moments give a Hotelling test on the same features
  (the mean-embedding tests of Chwialkowski et al. 2015).
- Histograms of random 1-D projections on a fixed grid: the sliced Wasserstein distance over all
  rows, at the grid's resolution.

A :class:`SketchSpec` fixes the bandwidth, frequencies, directions and grid. It is chosen once from
a pilot of the reference rows and then used for every set compared with that reference, so the
sums of different sets live in the same feature space (profiles merge only with the same spec).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from drift_decider.measure.merge_moments import combine_moments
from drift_decider.errors import InputError
from drift_decider.inputs.embeddings import gather_rows
from drift_decider.measure.metrics.mmd import median_bandwidth
from drift_decider.measure.row_keys import bottom_keys, row_keys, row_numbers

PILOT_ROWS = 1_000
DEFAULT_FREQUENCIES = 64      # features are the cos and sin of each: 128 per row
DEFAULT_PROJECTIONS = 64
DEFAULT_BINS = 1_024
MAX_FREQUENCIES = 2_048      # the features' second moment is (2 x 2,048)^2 float64 = 128 MB
MAX_PROJECTIONS = 1_024      # with MAX_BINS, histograms stay under 512 MB (a hostile file cannot ask for more)
MAX_BINS = 65_536
GRID_HALF_WIDTH = 8.0         # the grid spans the pilot's median +- this many robust SDs


@dataclass(frozen=True)
class SketchSpec:
    """Everything that must be equal for two sketches to be comparable or mergeable."""

    dim: int
    seed: int
    bandwidth: float
    frequencies: int
    projections: int
    bins: int
    grid_low: tuple[float, ...]    # per projection: left edge of the first bin
    grid_high: tuple[float, ...]   # per projection: right edge of the last bin
    omega: np.ndarray = field(init=False, repr=False, compare=False)        # (dim, frequencies)
    directions: np.ndarray = field(init=False, repr=False, compare=False)   # (dim, projections)

    def __post_init__(self) -> None:
        if not (1 <= self.frequencies <= MAX_FREQUENCIES and 1 <= self.projections <= MAX_PROJECTIONS
                and 1 <= self.bins <= MAX_BINS and self.bandwidth > 0):
            raise InputError(f"invalid sketch spec: {self.frequencies} frequencies (1..{MAX_FREQUENCIES}), "
                             f"{self.projections} projections (1..{MAX_PROJECTIONS}), {self.bins} bins "
                             f"(1..{MAX_BINS}), bandwidth {self.bandwidth} (> 0)")
        if not (len(self.grid_low) == len(self.grid_high) == self.projections):
            raise InputError("invalid sketch spec: one grid range per projection is needed")
        omega, directions = _random_maps(self.dim, self.seed, self.frequencies, self.projections)
        object.__setattr__(self, "omega", omega / self.bandwidth)
        object.__setattr__(self, "directions", directions)

    @classmethod
    def from_pilot(cls, x: np.ndarray, *, seed: int, name: str = "embeddings", ids: np.ndarray | None = None,
                   row_offset: int = 0, frequencies: int = DEFAULT_FREQUENCIES,
                   projections: int = DEFAULT_PROJECTIONS, bins: int = DEFAULT_BINS) -> "SketchSpec":
        """Spec for comparisons against ``x``, from its pilot: the up to 1,000 rows with the smallest
        row keys (drift_decider.measure.row_keys of ``ids``, or of the row numbers from
        ``row_offset``), in key order. A content-blind choice that any split of the rows (chunks,
        files, Spark partitions) finds again, and the first rows of a profile's sample of the same seed."""
        pilot_rows = pilot_positions(len(x), seed, ids, row_offset)
        pilot = gather_rows(x, pilot_rows).astype(np.float64)
        bad = ~np.isfinite(pilot).all(axis=1)
        if bad.any():
            raise InputError(f"{name}: row {int(pilot_rows[np.flatnonzero(bad)[0]])} contains NaN or infinite values")
        return cls.from_rows(pilot, seed=seed, frequencies=frequencies, projections=projections, bins=bins)

    @classmethod
    def from_rows(cls, pilot: np.ndarray, *, seed: int, frequencies: int = DEFAULT_FREQUENCIES,
                  projections: int = DEFAULT_PROJECTIONS, bins: int = DEFAULT_BINS) -> "SketchSpec":
        """Spec from pilot rows (finite, in key order): the median-heuristic bandwidth and a
        projection grid of median +- 8 robust SDs."""
        dim = pilot.shape[1]
        pilot = np.asarray(pilot, dtype=np.float64)
        if len(pilot) < 2:      # nothing to learn a scale from: unit bandwidth, grid around 0
            pilot = np.zeros((2, dim))
        bandwidth = median_bandwidth(pilot, np.random.default_rng([seed, 0xB4D]))
        _, directions = _random_maps(dim, seed, frequencies, projections)
        projected = pilot @ directions
        centre = np.median(projected, axis=0)
        q25, q75 = np.percentile(projected, [25, 75], axis=0)
        spread = (q75 - q25) / 1.349
        spread = np.where(spread > 0, spread, projected.std(axis=0))
        spread = np.where(spread > 0, spread, 1.0)
        return cls(dim, seed, bandwidth if bandwidth > 0 else 1.0, frequencies, projections, bins,
                   tuple((centre - GRID_HALF_WIDTH * spread).tolist()),
                   tuple((centre + GRID_HALF_WIDTH * spread).tolist()))

    def bin_widths(self) -> np.ndarray:
        return (np.asarray(self.grid_high) - np.asarray(self.grid_low)) / self.bins

    def to_json(self) -> dict:
        return {"dim": self.dim, "seed": self.seed, "bandwidth": self.bandwidth, "frequencies": self.frequencies,
                "projections": self.projections, "bins": self.bins,
                "grid_low": list(self.grid_low), "grid_high": list(self.grid_high)}

    @classmethod
    def from_json(cls, data: dict) -> "SketchSpec":
        return cls(int(data["dim"]), int(data["seed"]), float(data["bandwidth"]), int(data["frequencies"]),
                   int(data["projections"]), int(data["bins"]), tuple(map(float, data["grid_low"])),
                   tuple(map(float, data["grid_high"])))


@dataclass(frozen=True, eq=False)
class FeatureSketch:
    """Sums over ``count`` rows under one spec: feature mean and centred second moment, and each
    projection's histogram (bin 0 and bin ``bins + 1`` count the rows outside the grid, whose
    values are summed in ``tail_sums`` so their mass can be placed at its mean)."""

    spec: SketchSpec
    count: int
    feature_mean: np.ndarray   # (2 * frequencies,) float64: [cos..., sin...] / sqrt(frequencies)
    feature_m2: np.ndarray     # (2 * frequencies, 2 * frequencies) float64
    histograms: np.ndarray     # (projections, bins + 2) int64
    tail_sums: np.ndarray      # (projections, 2) float64: sums of the values below / above the grid

    @classmethod
    def empty(cls, spec: SketchSpec) -> "FeatureSketch":
        f = 2 * spec.frequencies
        return cls(spec, 0, np.zeros(f), np.zeros((f, f)), np.zeros((spec.projections, spec.bins + 2), np.int64),
                   np.zeros((spec.projections, 2)))

    @classmethod
    def of_rows(cls, spec: SketchSpec, rows: np.ndarray) -> "FeatureSketch":
        """Sketch of a chunk of rows (2-D, finite)."""
        if len(rows) == 0:
            return cls.empty(spec)
        # float32 products (rounding far below the features' and bins' resolution), float64 sums
        x = np.asarray(rows, dtype=np.float32)
        features = random_features(spec, x)
        mean = features.mean(axis=0)
        centred = features - mean
        values = (x @ spec.directions.astype(np.float32)).astype(np.float64)
        low, widths = np.asarray(spec.grid_low), spec.bin_widths()
        index = np.clip(np.floor((values - low) / widths).astype(np.int64) + 1, 0, spec.bins + 1)
        offsets = np.arange(spec.projections) * (spec.bins + 2)
        histograms = np.bincount((index + offsets).ravel(), minlength=spec.projections * (spec.bins + 2))
        tails = np.stack([np.where(index == 0, values, 0.0).sum(axis=0),
                          np.where(index == spec.bins + 1, values, 0.0).sum(axis=0)], axis=1)
        return cls(spec, len(x), mean, centred.T @ centred,
                   histograms.reshape(spec.projections, spec.bins + 2).astype(np.int64), tails)

    def merge(self, other: "FeatureSketch") -> "FeatureSketch":
        if self.spec != other.spec:
            raise InputError("sketches were built with different specs (bandwidth, seed or grid) and cannot "
                             "be merged; build both with the same SketchSpec")
        mean, m2 = combine_moments(self.count, self.feature_mean, self.feature_m2,
                                   other.count, other.feature_mean, other.feature_m2)
        return FeatureSketch(self.spec, self.count + other.count, mean, m2, self.histograms + other.histograms,
                             self.tail_sums + other.tail_sums)


def pilot_positions(n: int, seed: int, ids: np.ndarray | None = None, row_offset: int = 0,
                    block: int = 1 << 20) -> np.ndarray:
    """Positions of the PILOT_ROWS rows with the smallest keys, in key order; keys are computed a
    block at a time, so a memory-mapped set of any length needs only one block of keys."""
    best_pos, best_keys = np.zeros(0, np.int64), np.zeros(0, np.uint64)
    for start in range(0, n, block):
        stop = min(n, start + block)
        keys = row_keys(seed, row_numbers(row_offset + start, stop - start) if ids is None else ids[start:stop])
        pos = np.concatenate([best_pos, np.arange(start, stop)])
        keys = np.concatenate([best_keys, keys])
        keep = bottom_keys(keys, PILOT_ROWS)
        best_pos, best_keys = pos[keep], keys[keep]
    return best_pos


def random_features(spec: SketchSpec, x: np.ndarray) -> np.ndarray:
    """(rows, 2 * frequencies) features whose inner products approximate the Gaussian kernel."""
    angles = (x @ spec.omega.astype(x.dtype)).astype(np.float64)
    return np.concatenate([np.cos(angles), np.sin(angles)], axis=1) / np.sqrt(spec.frequencies)


def _random_maps(dim: int, seed: int, frequencies: int, projections: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit-bandwidth frequencies (standard normal) and unit projection directions from the seed."""
    rng = np.random.default_rng([seed, 0x5CE7C4])
    omega = rng.standard_normal((dim, frequencies))
    directions = rng.standard_normal((dim, projections))
    return omega, directions / np.linalg.norm(directions, axis=0)
