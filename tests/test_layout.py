"""The repository's top level is the design card's: nothing else is tracked there."""
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CARD = {"pyproject.toml", "README.md", "snnlite", "examples", "tests", "data_tools"}


def test_top_level_is_the_card():
    try:
        out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    top = {p.split("/", 1)[0] for p in out.splitlines()}
    extra = {p for p in top - CARD if not p.startswith(".")}
    assert not extra, f"top-level entries outside the design card: {sorted(extra)}"
    assert CARD <= top
