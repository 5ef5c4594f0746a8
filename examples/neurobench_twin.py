"""The PyTorch half of the NeuroBench comparison: rebuild a snnlite chain model in torch,
run NeuroBench's own metrics on it, print them as JSON. Needs torch, snntorch and neurobench
only (not snnlite); run by ``examples/neurobench_compare.py`` with the Python of such a
virtual environment (``$SNNLITE_NEUROBENCH_PYTHON``)::

    ~/venv-nb/bin/python examples/neurobench_twin.py job.npz

``job.npz`` (written by ``neurobench_compare.export_job``): ``spec`` (JSON: the layers in
order, from snnlite's traced graph), every state_dict array under ``param/<name>``,
``x`` [N, T, C, H, W] float64 (NeuroBench's batch-first layout), ``y`` [N], ``batch_size``.
The twin computes in float64; its LIF is snnlite's (SpikingJelly's) step, a subclass of
snntorch's ``SpikingNeuron`` so that NeuroBench hooks it and reads its ``mem``.
"""
import json
import sys

import numpy as np
import snntorch as snn
import torch
from neurobench.benchmarks import Benchmark
from neurobench.metrics.static import ConnectionSparsity, Footprint, ParameterCount
from neurobench.metrics.workload import (
    ActivationSparsity,
    ClassificationAccuracy,
    MembraneUpdates,
    SynapticOperations,
)
from neurobench.models import TorchModel
from torch import nn


class LIF(snn.SpikingNeuron):
    """snnlite's LIF step: charge, fire (h >= v_th), reset; ``mem`` is the membrane after
    the step (a new tensor each call, as NeuroBench's hooks keep references)."""

    def __init__(self, tau, v_threshold, v_reset, decay_input):
        nn.Module.__init__(self)  # no snntorch buffers: the footprint is the model's own
        self.tau, self.v_th, self.v_reset, self.decay_input = tau, v_threshold, v_reset, decay_input
        self.init_hidden, self.output, self.mem = True, False, None

    def forward(self, x):
        r = 0.0 if self.v_reset is None else self.v_reset
        v = torch.full_like(x, r) if self.mem is None else self.mem
        if self.decay_input:
            h = v + (x - (v - r)) / self.tau
        else:
            h = v - (v - r) / self.tau + x
        s = (h >= self.v_th).to(x.dtype)
        self.mem = torch.where(s > 0, torch.full_like(h, r), h) if self.v_reset is not None \
            else h - s * self.v_th
        return s


class Twin(nn.Module):
    """The chain of layers, run one time step per call of every layer; logits = the mean
    over T of the readout."""

    def __init__(self, spec):
        super().__init__()
        mods = []
        for L in spec:
            k = L["kind"]
            if k == "conv":
                m = nn.Conv2d(L["in"], L["out"], L["k"], L["stride"], L["padding"], bias=L["bias"])
            elif k == "linear":
                m = nn.Linear(L["in"], L["out"], bias=L["bias"])
            elif k == "bn":
                bn = nn.BatchNorm2d if L["dims"] == 2 else nn.BatchNorm1d
                m = bn(L["features"], eps=L["eps"])
            elif k == "lif":
                m = LIF(L["tau"], L["v_threshold"], L["v_reset"], L["decay_input"])
            elif k == "avgpool":
                m = nn.AvgPool2d(L["k"])
            elif k == "maxpool":
                m = nn.MaxPool2d(L["k"])
            elif k == "flatten":
                m = nn.Flatten()
            elif k == "mean":
                continue
            else:
                raise TypeError(f"twin: layer kind {k!r} is not supported")
            mods.append(m)
        self.layers = nn.ModuleList(mods)
        self.names = [L["name"] for L in spec if L["kind"] != "mean"]

    def forward(self, x):  # x [B, T, C, H, W]
        for m in self.layers:
            if isinstance(m, LIF):
                m.mem = None
        out = 0
        for t in range(x.shape[1]):
            h = x[:, t]
            for m in self.layers:
                h = m(h)
            out = out + h
        return out / x.shape[1]


def load(job, dtype=torch.float64):
    """The twin with the job's arrays; floating-point ones cast to ``dtype``."""
    spec = json.loads(str(job["spec"]))
    net = Twin(spec)
    sd = {}
    for i, (name, m) in enumerate(zip(net.names, net.layers)):
        for k in m.state_dict():
            t = torch.from_numpy(np.array(job[f"param/{name}.{k}"]))
            sd[f"layers.{i}.{k}"] = t.to(dtype) if t.is_floating_point() else t
    net.load_state_dict(sd, strict=True)
    return net.to(dtype)


def run(path):
    job = np.load(path)
    net = load(job)
    x = torch.from_numpy(np.array(job["x"], np.float64))
    y = torch.from_numpy(np.array(job["y"], np.int64))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y),
                                         batch_size=int(job["batch_size"]), shuffle=False)
    model = TorchModel(net)
    model.add_activation_module(LIF)
    static = [Footprint, ParameterCount, ConnectionSparsity]
    work = [ActivationSparsity, SynapticOperations, MembraneUpdates, ClassificationAccuracy]

    def argmax(preds):  # ClassificationAccuracy compares labels
        return preds.argmax(-1)
    res = Benchmark(model, loader, [], [argmax], [static, work]).run(quiet=True)
    # the footprint of the model as stored (its arrays' own dtype), by NeuroBench's metric
    stored = np.array(job["param/" + next(k[6:] for k in job.files if k.startswith("param/"))])
    res["footprint"] = Footprint()(TorchModel(load(job, torch.from_numpy(stored).dtype)))
    names = {"Footprint": "footprint", "ParameterCount": "parameter_count",
             "ConnectionSparsity": "connection_sparsity",
             "ActivationSparsity": "activation_sparsity",
             "SynapticOperations": "synaptic_operations", "MembraneUpdates": "membrane_updates",
             "ClassificationAccuracy": "classification_accuracy", "footprint": "footprint"}
    return {names.get(k, k): (float(v) if not isinstance(v, dict) else
                              {a: float(b) for a, b in v.items()}) for k, v in res.items()}


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__.split("\n\n")[0] + "\nusage: neurobench_twin.py job.npz")
    print(json.dumps(run(sys.argv[1])))
