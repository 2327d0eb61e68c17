"""`pip install .` (not editable) then `drift-decider demo`, as a user without the repository runs it.

The wheel is built by pip from a copy of the source tree (the checkout is not written to; pip
fetches the build backend from PyPI as usual) and installed without dependencies into a fresh
venv that sees this interpreter's packages through a .pth line, so mlflow and the rest are not
downloaded again. A .pth line adds a folder without running the .pth files in it, so an editable
install of the checkout stays invisible there: the demo reads only what the wheel carries.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from drift_decider.demo.run import MARKER, SCHEDULE, run_demo
from drift_decider.errors import InputError
from drift_decider.tracking.connection import connect

ROOT = Path(__file__).resolve().parents[1]


def _run(*command: object, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in command], capture_output=True, text=True, **kwargs)


def _build_wheel(tmp: Path) -> Path:
    """`pip wheel` of a copy of the checkout, without what .gitignore names (venvs, builds, stores)."""
    ignored = [line.strip().rstrip("/") for line in (ROOT / ".gitignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    source = tmp / "source"
    shutil.copytree(ROOT, source, symlinks=True, ignore=shutil.ignore_patterns(".git", *ignored))
    built = _run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--wheel-dir", tmp / "dist", source,
                 env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    assert built.returncode == 0, built.stdout + built.stderr
    return next((tmp / "dist").glob("drift_decider-*.whl"))


def _install(wheel: Path, env_dir: Path) -> Path:
    """A venv holding only the wheel, with this interpreter's site-packages for its dependencies."""
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    purelib = _run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))").stdout.strip()
    Path(purelib, "dependencies-from-the-test-venv.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    installed = _run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", wheel)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return env_dir / "bin"


@pytest.mark.slow
def test_demo_runs_from_the_wheel_and_starts_over_only_on_force(tmp_path: Path) -> None:
    wheel = _build_wheel(tmp_path)
    names = zipfile.ZipFile(wheel).namelist()
    assert {"drift_decider/policies/recommender-default.yaml", "drift_decider/demo/movielens_data/ratings.csv",
            "drift_decider/demo/movielens_data/README.txt"} <= set(names)
    assert not [n for n in names if "/tests/" in n or Path(n).name.startswith("test_")], "tests in the wheel"

    env_dir = tmp_path / "venv"
    bin_dir = _install(wheel, env_dir)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MLFLOW_TRACKING_URI")}
    where = _run(bin_dir / "python", "-c", "import drift_decider; print(drift_decider.__file__)", cwd=tmp_path, env=env)
    assert Path(where.stdout.strip()).is_relative_to(env_dir), where.stdout + where.stderr

    workdir = tmp_path / "demo"
    demo = (bin_dir / "drift-decider", "demo", "--workdir", workdir, "--json")
    first = _run(*demo, cwd=tmp_path, env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    assert len(json.loads(first.stdout)["windows"]) == len(SCHEDULE)

    again = _run(*demo, cwd=tmp_path, env=env)
    assert again.returncode == 2 and "--force" in again.stderr, again.stderr[-3000:]

    forced = _run(*demo, "--force", cwd=tmp_path, env=env)
    assert forced.returncode == 0, forced.stderr[-3000:]
    result = json.loads(forced.stdout)
    client = connect(result["tracking_uri"])
    runs = client.search_runs([client.get_experiment_by_name("drift-decider").experiment_id])
    assert len(runs) == len(result["windows"]) == len(SCHEDULE)     # started over: one run per window


def test_a_store_the_demo_did_not_mark_is_never_deleted(tmp_path: Path) -> None:
    (tmp_path / "mlflow.db").write_bytes(b"someone's store")
    for force in (False, True):
        with pytest.raises(InputError, match="will not delete"):
            run_demo(tmp_path, force=force)
    assert (tmp_path / "mlflow.db").read_bytes() == b"someone's store"
    assert not (tmp_path / MARKER).exists()


def test_a_half_built_demo_blocks_a_rerun_with_a_message_naming_force(tmp_path: Path) -> None:
    (tmp_path / MARKER).write_text("")
    (tmp_path / "data").mkdir()
    with pytest.raises(InputError, match="--force"):
        run_demo(tmp_path)
    assert (tmp_path / "data").is_dir()
