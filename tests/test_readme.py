"""The README's five-minute tour runs as written (with the data folder of this machine)."""
import os
import pathlib
import re

import pytest

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def test_readme_tour_runs(mini_npz):
    text = README.read_text()
    code = re.search(r"## A five-minute tour\n\n```python\n(.*?)```", text, re.S).group(1)
    assert '"../shared/data/cifar10-mini.npz"' in code
    code = code.replace('"../shared/data/cifar10-mini.npz"', repr(os.fspath(mini_npz)))
    namespace = {}
    exec(compile(code, str(README), "exec"), namespace)
    assert namespace["logits"].shape == (32, 10)
    with pytest.raises(KeyError):
        namespace["torch"]
