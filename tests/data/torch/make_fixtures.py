"""Write the real-PyTorch checkpoints that tests/test_torch_pth.py reads without torch.

Run with a Python that has torch (the fixtures in this folder were made with torch 2.13.0):

    python tests/data/torch/make_fixtures.py

For each NAME it writes NAME.pth with ``torch.save`` and NAME.npz holding the expected
arrays (``tensor.numpy()``; bfloat16 as float32), in the state dict's key order.
"""

from pathlib import Path

import numpy as np
import torch
from torch import nn

OUT = Path(__file__).resolve().parent


def expected(sd):
    def conv(t):
        return (t.float() if t.dtype == torch.bfloat16 else t).detach().numpy()

    return {k: conv(v) for k, v in sd.items() if isinstance(v, torch.Tensor)}


def save(name, obj, sd, legacy=False):
    torch.save(obj, OUT / f"{name}.pth", _use_new_zipfile_serialization=not legacy)
    np.savez(OUT / f"{name}.npz", **expected(sd))


def main():
    torch.manual_seed(0)
    # Conv -> BN -> Linear on the last axis; one training step gives non-trivial BN buffers.
    model = nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), nn.BatchNorm2d(4), nn.Linear(4, 2))
    model.train()
    model(torch.randn(2, 3, 6, 6))
    sd = model.state_dict()
    save("seq_zip", sd, sd)
    save("seq_legacy", sd, sd, legacy=True)

    sd64 = model.double().state_dict()
    save("seq_float64", sd64, sd64)

    mixed = {
        "half": torch.randn(3, 5).half(),
        "bf16": torch.randn(4, 3).bfloat16(),
        "int32": torch.arange(-6, 6, dtype=torch.int32).reshape(3, 4),
        "int16": torch.tensor([-300, 0, 300], dtype=torch.int16),
        "int8": torch.tensor([-128, 5, 127], dtype=torch.int8),
        "uint8": torch.tensor([0, 200, 255], dtype=torch.uint8),
        "uint16": torch.tensor([0, 1000, 65535], dtype=torch.uint16),
        "bool": torch.tensor([True, False, True]),
        "complex64": torch.randn(2, 2, dtype=torch.complex64),
        "scalar": torch.tensor(2.5),
        "empty": torch.zeros(0, 3),
    }
    save("dtypes", mixed, mixed)

    w = torch.randn(3, 4)
    x = torch.arange(10, dtype=torch.float32)
    views = {"w": w, "wt": w.t(), "col": w[:, 1], "x": x, "tail": x[1:], "step": x[2::3]}
    save("views_zip", views, views)
    save("views_legacy", views, views, legacy=True)

    ckpt = {"state_dict": sd, "epoch": 3, "best_acc": 0.75, "arch": "seq"}
    save("nested", ckpt, sd)

    dp = {"model": nn.DataParallel(model.float()).state_dict(), "epoch": 7}
    save("data_parallel", dp, model.state_dict())


if __name__ == "__main__":
    main()
