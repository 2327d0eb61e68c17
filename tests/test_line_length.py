"""Every Python file in the repository keeps to the line length setup.cfg states (its [flake8] section,
the one number), so the limit is a fact of the code and not only a setting no tool reads."""

from __future__ import annotations

import configparser
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_no_python_line_is_longer_than_setup_cfg_allows() -> None:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    limit = config.getint("flake8", "max-line-length")
    files = subprocess.run(["git", "ls-files", "*.py"], cwd=ROOT, capture_output=True, text=True, check=True)
    paths = [ROOT / name for name in files.stdout.split()]
    long = [f"{path.relative_to(ROOT)}:{number}: {len(line)}" for path in paths if path.is_file()
            for number, line in enumerate(path.read_text().splitlines(), start=1) if len(line) > limit]
    assert long == [], f"lines longer than {limit} (setup.cfg [flake8] max-line-length): {long}"
