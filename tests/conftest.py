import os
import pathlib

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]


def shared_data_dir():
    """``$SNNLITE_DATA`` or ``<repo>/../shared/data``."""
    return pathlib.Path(os.environ.get("SNNLITE_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture
def mini_npz():
    path = shared_data_dir() / "cifar10-mini.npz"
    if not path.exists():
        pytest.skip(f"CIFAR-10 mini subset not found at {path} (set SNNLITE_DATA)")
    return path
