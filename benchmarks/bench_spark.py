"""`drift-decider measure` on Spark (local[2]) beside the single-process engine, from Parquet.

    PYTHONPATH=. /work/venv/bin/python benchmarks/bench_spark.py --rows 1000000     # ~5 min
    ... bench_spark.py --rows 10000000 --no-partials     # Spark and the .npy path at 10M (~15 min)
    ... bench_spark.py --rows 1000000 --reference-set    # `reference set` instead of `measure`

Writes per side and size a directory of --files Parquet files (item_id int64, embedding
list<float>, dim --dim), the same vectors as one .npy (the single-process engine's scalable input:
memory-mapped, keyed by row number as it has no ids) and, up to --local-up-to rows, the same rows
as one .parquet file (the single-process engine on the same rows and ids, whose metrics must equal
Spark's; it holds both tables and matrices in memory: 2.6 GB at 1M x 128). Each engine runs as the
user runs it, `python -m drift_decider measure --json` in its own process, and the table shows
wall time, the CLI process's peak RSS (ru_maxrss, _peak_rss.py) and the peak RSS summed over its
process tree (for Spark, the driver JVM, which in local mode is also the executor, and its Python
workers), sampled every 0.2 s.

Then the bytes each partition sends (its pickled partial profile, pass 3 of
drift_decider.measure.spark_profile, measured on the reference) and what reaches the driver: the
last level of a fan-in-8 tree, computed for the measured partition count and for 10,000 partitions.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from _peak_rss import run_measured

DATA = Path(__file__).resolve().parent / "results" / "spark-data"     # git ignores results/
CHUNK = 250_000


def write_side(root: Path, rows: int, dim: int, files: int, seed: int, shift: float, single: bool) -> None:
    """``root``/dir of ``files`` Parquet files and, if ``single``, ``root``.parquet with the same rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if (root / "_SUCCESS").exists():
        return
    root.mkdir(parents=True, exist_ok=True)
    schema = pa.schema([("item_id", pa.int64()), ("embedding", pa.list_(pa.float32()))])
    one = pq.ParquetWriter(root.with_suffix(".parquet"), schema) if single else None
    per_file = math.ceil(rows / files)
    rng = np.random.default_rng(seed)
    for f in range(files):
        with pq.ParquetWriter(root / f"part-{f:05d}.parquet", schema) as writer:
            for start in range(f * per_file, min(rows, (f + 1) * per_file), CHUNK):
                n = min(CHUNK, rows - start, (f + 1) * per_file - start)
                x = rng.standard_normal((n, dim), dtype=np.float32)
                x[:, :8] += np.float32(shift)
                table = pa.table({"item_id": np.arange(start, start + n, dtype=np.int64) + int(seed * 10**9),
                                  "embedding": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), dim)
                                  .cast(pa.list_(pa.float32()))}, schema=schema)
                writer.write_table(table)
                if one is not None:
                    one.write_table(table)
    if one is not None:
        one.close()
    (root / "_SUCCESS").touch()


def write_npy(root: Path) -> Path:
    """``root``'s Parquet files' vectors, in file order, as ``root``.npy (float32, written in blocks)."""
    import pyarrow.parquet as pq

    target = root.with_suffix(".npy")
    if target.exists():
        return target
    files = sorted(root.glob("part-*.parquet"))
    rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    dim = len(pq.ParquetFile(files[0]).read_row_group(0, columns=["embedding"]).column(0)[0])
    out = np.lib.format.open_memmap(target.with_suffix(".tmp"), mode="w+", dtype=np.float32, shape=(rows, dim))
    at = 0
    for f in files:
        for batch in pq.ParquetFile(f).iter_batches(batch_size=CHUNK, columns=["embedding"]):
            block = batch.column(0).flatten().to_numpy().reshape(-1, dim)
            out[at:at + len(block)] = block
            at += len(block)
    out.flush()
    del out
    target.with_suffix(".tmp").rename(target)
    return target


class TreePeak:
    """Peak RSS summed over a process and its descendants, sampled from /proc."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak_mb, self._done = pid, 0.0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        page = os.sysconf("SC_PAGE_SIZE")
        while not self._done.wait(0.2):
            children: dict[int, list[int]] = {}
            for entry in Path("/proc").iterdir():
                if entry.name.isdigit():
                    try:
                        ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                    except (OSError, IndexError):
                        continue
                    children.setdefault(ppid, []).append(int(entry.name))
            total, todo = 0, [self.pid]
            while todo:
                pid = todo.pop()
                todo += children.get(pid, [])
                try:
                    total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * page
                except OSError:
                    pass
            self.peak_mb = max(self.peak_mb, total / 2**20)

    def stop(self) -> float:
        self._done.set()
        self._thread.join()
        return self.peak_mb


def run_cli(reference: Path, current: Path, engine: str, master: str) -> tuple[float, float, float, dict]:
    """(seconds, CLI process peak MB, process-tree peak MB, report) of one `measure --json`."""
    run = run_command(["measure", "--reference", str(reference), "--current", str(current), "--json",
                       "--engine", engine, "--spark-master", master])
    return run[0], run[1], run[2], json.loads(run[3])


def run_command(args: list[str]) -> tuple[float, float, float, str]:
    """(seconds, CLI process peak MB, process-tree peak MB, stdout) of one `drift-decider ARGS` process."""
    command = [sys.executable, "-m", "drift_decider", *args]
    holder: dict = {}
    launcher = threading.Thread(target=lambda: holder.update(run=run_measured(command)))
    launcher.start()
    tree = None
    while launcher.is_alive() and tree is None:      # the launcher's child is the CLI process
        time.sleep(0.05)
        out = subprocess.run(["pgrep", "-f", "-n", "drift_decider " + " ".join(args[:4])],
                             capture_output=True, text=True).stdout.split()
        tree = TreePeak(int(out[0])) if out else None
    launcher.join()
    tree_mb = tree.stop() if tree is not None else float("nan")
    run = holder["run"]
    if run.returncode != 0:
        raise SystemExit(f"{' '.join(args[:2])} failed ({run.returncode}): {run.stderr[-2000:]}")
    return run.seconds, run.peak_mb, tree_mb, run.stdout


def reference_set(embeddings: Path, engine: str, master: str, store: Path) -> tuple[float, float, float]:
    """`reference set` of ``embeddings`` into a new version of a fresh sqlite store, as users run it."""
    store.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{store / 'mlflow.db'}"
    subprocess.run([sys.executable, "-m", "drift_decider", "register", "--model", "bench", "--tracking-uri", uri],
                   check=True, capture_output=True)
    return run_command(["reference", "set", "--embeddings", str(embeddings), "--model", "bench", "--version", "1",
                        "--tracking-uri", uri, "--engine", engine, "--spark-master", master])[:3]


def partial_bytes(reference: Path, master: str) -> tuple[int, list[int]]:
    """(partitions, bytes of each partition's pickled partial profile) of the reference table."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark.sql import functions as F

    from drift_decider.inputs.spark_tables import read_table, spark_session
    from drift_decider.measure.spark_profile import partials_frame

    spark = spark_session(master)
    df = read_table(spark, reference)
    sizes = [row[0] for row in partials_frame(df, seed=0).select(F.length("partial")).collect()]
    return df.rdd.getNumPartitions(), sizes


def driver_partials(partitions: int, fan_in: int = 8) -> int:
    """How many partials reach the driver: the last level of RDD.treeReduce at the depth
    spark_profile._tree picks (the loop of pyspark's treeAggregate, float division and all)."""
    depth = max(2, math.ceil(math.log(max(partitions, 2)) / math.log(fan_in)))
    scale = max(int(math.ceil(partitions ** (1.0 / depth))), 2)
    level, count = float(partitions), partitions
    while level > scale + level / scale:
        level /= scale
        count = int(level)
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--local-up-to", type=int, default=1_000_000, help="largest size the single-process "
                        "engine runs at (it holds both tables and matrices in memory)")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--no-partials", action="store_true", help="skip measuring the partial profiles' "
                        "bytes (one more Spark run over the first size's reference)")
    parser.add_argument("--reference-set", action="store_true", help="time `reference set` of the reference "
                        "side instead of `measure` (Spark directory vs the single-process .parquet)")
    args = parser.parse_args()
    table = []
    if args.reference_set:
        for rows in args.rows:
            side = args.data / f"reference-{rows}x{args.dim}"
            write_side(side, rows, args.dim, args.files, 0, 0.0, rows <= args.local_up_to)
            stores = args.data / f"stores-{time.time_ns()}"
            table.append((rows, "spark " + args.master,
                          *reference_set(side, "spark", args.master, stores / "spark")))
            print(table[-1], flush=True)
            if rows <= args.local_up_to:
                table.append((rows, "single, .parquet",
                              *reference_set(side.with_suffix(".parquet"), "local", args.master, stores / "local")))
                print(table[-1], flush=True)
        print(f"\n`reference set`\n{'rows':>14} {'engine':<18} {'wall s':>8} {'CLI peak MB':>12} {'tree peak MB':>13}")
        for rows, engine, seconds, peak, tree in table:
            print(f"{rows:>14,} {engine:<18} {seconds:>8.1f} {peak:>12.0f} {tree:>13.0f}")
        return
    for rows in args.rows:
        single = rows <= args.local_up_to
        sides = [args.data / f"{name}-{rows}x{args.dim}" for name in ("reference", "current")]
        started = time.perf_counter()
        for seed, (side, shift) in enumerate(zip(sides, (0.0, 0.05))):
            write_side(side, rows, args.dim, args.files, seed, shift, single)
        print(f"data {rows:,} x {args.dim} per side ready in {time.perf_counter() - started:.0f} s", flush=True)
        spark = run_cli(sides[0], sides[1], "spark", args.master)
        table.append((rows, "spark " + args.master, *spark[:3]))
        print(table[-1], flush=True)
        mapped = run_cli(write_npy(sides[0]), write_npy(sides[1]), "local", args.master)
        table.append((rows, "single, .npy", *mapped[:3]))
        print(table[-1], flush=True)
        if single:
            local = run_cli(sides[0].with_suffix(".parquet"), sides[1].with_suffix(".parquet"), "local", args.master)
            table.append((rows, "single, .parquet", *local[:3]))
            print(table[-1], flush=True)
            same = {k for k, v in local[3]["values"].items()
                    if math.isclose(v, spark[3]["values"][k], rel_tol=1e-6, abs_tol=1e-12)}
            print(f"metrics equal to 1e-6 (Spark vs .parquet): {len(same)} of {len(local[3]['values'])}", flush=True)
    print(f"\n{'rows per side':>14} {'engine':<18} {'wall s':>8} {'CLI peak MB':>12} {'tree peak MB':>13}")
    for rows, engine, seconds, peak, tree in table:
        print(f"{rows:>14,} {engine:<18} {seconds:>8.1f} {peak:>12.0f} {tree:>13.0f}")
    if args.no_partials:
        return
    partitions, sizes = partial_bytes(args.data / f"reference-{args.rows[0]}x{args.dim}", args.master)
    last, last_10k = driver_partials(partitions), driver_partials(10_000)
    print(f"\npartial profile per partition ({partitions} partitions of {args.rows[0]:,} rows): "
          f"max {max(sizes) / 2**20:.2f} MB, mean {np.mean(sizes) / 2**20:.2f} MB")
    print(f"reaching the driver: {last} partials, at most {last * max(sizes) / 2**20:.1f} MB; with 10,000 "
          f"partitions {last_10k} partials, at most {last_10k * max(sizes) / 2**20:.1f} MB "
          f"(plus the sample: at most 10,000 rows x {args.dim} float32)")


if __name__ == "__main__":
    main()
