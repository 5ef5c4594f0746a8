"""NeuroBench's metrics, with NeuroBench's definitions (neurobench 2.x, ``neurobench/metrics``),
computed without torch from the traced graph and the dense reference forward.

Static (of the model as stored, BN unfolded, as a PyTorch twin holds it):
  footprint             bytes of every parameter and buffer (state_dict arrays)
  parameter_count       elements of every parameter (buffers excluded)
  connection_sparsity   zero weights / weights of every Conv / Linear layer (biases and BN
                        excluded), rounded to 4 decimals as NeuroBench does
Workload (per sample, summed over the T steps; the model run one step per call, batches of
``batch_size`` as NeuroBench's DataLoader would give them):
  activation_sparsity   zeros / elements of every spiking layer's output (LIF), over all
                        layers, steps and samples
  synaptic_operations   per Conv / Linear call: its input binarised (nonzero -> 1) through
                        its binarised weights (nonzero -> 1), bias excluded: ``Effective_ACs``
                        if every input value of the call (the whole batch, one step) is 0, 1
                        or -1, else ``Effective_MACs``; ``Dense`` the same with all-ones
                        inputs and weights
  membrane_updates      per spiking layer: every neuron at the first step, then the neurons
                        whose membrane changed from one step to the next
  classification_accuracy

How these differ from snnlite's own counts (see README): NeuroBench has no synop through a
zero weight or from a zero input value, no identity (shortcut) synops, no bias adds; spikes
that average pooling merges reach the next layer as one fractional value (MACs, once per
nonzero pooled position); a membrane that does not change is not updated.
"""
import numpy as np

from ..nn import functional as F
from ..nn.graph import trace
from .dense import dense_forward

CONNECTIONS = ("conv", "linear")


def static_metrics(model):
    """{"footprint", "parameter_count", "connection_sparsity"} of ``model`` as stored."""
    sd = model.state_dict()
    footprint = int(sum(np.asarray(v).nbytes for v in sd.values()))
    params = int(sum(p.data.size for p in model.parameters()))
    zeros = total = 0
    for name, m in model.named_modules():
        if getattr(m, "kind", None) in CONNECTIONS:
            w = m.weight.data
            zeros += int(np.count_nonzero(w == 0))
            total += int(w.size)
    return {"footprint": footprint, "parameter_count": params,
            "connection_sparsity": round(zeros / total, 4) if total else 0.0}


class WorkloadCounter:
    """Accumulates NeuroBench's workload metrics over batches of encoded input."""

    def __init__(self, model, input_shape):
        self.model = model
        self.graph = trace(model, tuple(input_shape))
        self.conns = self.graph.of_kind(*CONNECTIONS)
        self.neurons = self.graph.of_kind("lif")
        self.reset()

    def reset(self):
        self.mac = self.ac = self.dense = 0
        self.spikes = self.elements = 0
        self.mem_updates = 0
        self.samples = 0
        self.correct = 0
        self.labelled = 0

    def add(self, x, labels=None):
        """One NeuroBench batch: x [T, B, C, H, W] (the encoded input, as the model sees it)."""
        T, B = x.shape[:2]
        x = np.asarray(x, self.model.dtype)
        names = {n.inputs[0] for n in self.conns if n.inputs[0] != self.graph.input.name}
        names |= {n.name for n in self.neurons} | {n.inputs[0] for n in self.neurons}
        logits, rec = dense_forward(self.model, x, sorted(names))
        for node in self.conns:
            src = node.inputs[0]
            xin = np.asarray(x if src == self.graph.input.name else rec[src])
            xin = xin.reshape((T, B) + tuple(self.graph[src].out_shape))
            w = node.module.weight.data
            wb = (w != 0).astype(np.float64)
            ones_w = np.ones_like(wb)
            ones_in = np.ones((1,) + xin.shape[2:])
            dense_one = self._ops(node, ones_in, ones_w)
            for t in range(T):
                step = xin[t]
                ops = self._ops(node, (step != 0).astype(np.float64), wb)
                spiking = bool(np.all((step == 0) | (step == 1) | (step == -1)))
                if spiking:
                    self.ac += ops
                else:
                    self.mac += ops
                self.dense += dense_one * B
        for node in self.neurons:
            s = np.asarray(rec[node.name]).reshape(T, B, -1)
            self.spikes += int(np.count_nonzero(s))
            self.elements += int(s.size)
            self.mem_updates += self._membrane_updates(node, rec[node.inputs[0]], T, B)
        self.samples += B
        if labels is not None:
            self.correct += int((np.asarray(logits).argmax(1) == np.asarray(labels)).sum())
            self.labelled += len(labels)
        return logits

    @staticmethod
    def _ops(node, xin, wb):
        """Sum over outputs of a binary input (N, ...) through binary weights: the number of
        (nonzero input, nonzero weight) pairs (NeuroBench's ``stateless_layer_macs``)."""
        m = node.module
        if node.kind == "conv":
            y = F.conv2d_forward(np.ascontiguousarray(xin), np.ascontiguousarray(wb), None,
                                 m.stride, m.padding, sparse_below=0.0)
        else:
            y = xin.reshape(xin.shape[0], -1) @ wb.T
        return int(np.rint(y.sum()))

    @staticmethod
    def _membrane_updates(node, current, T, B):
        """Every neuron at step 0, then those whose membrane (after reset) changed."""
        lif = node.module
        cur = np.asarray(current).reshape((T, B) + tuple(node.in_shape))
        stream = getattr(lif, "stream", None)
        if stream is None:
            raise TypeError(f"membrane updates: neuron layer {node.name!r} "
                            f"({type(lif).__name__}) has no stream(x, v) to step it")
        v_prev, n = None, 0
        for t in range(T):
            _, v = stream(np.ascontiguousarray(cur[t:t + 1]), v_prev)
            n += v.size if v_prev is None else int(np.count_nonzero(v != v_prev))
            v_prev = v
        return n

    def compute(self):
        """NeuroBench's workload results, per sample."""
        n = max(self.samples, 1)
        acc = None if not self.labelled else self.correct / self.labelled
        return {"activation_sparsity": (self.elements - self.spikes) / self.elements
                if self.elements else 0.0,
                "synaptic_operations": {"Effective_MACs": self.mac / n,
                                        "Effective_ACs": self.ac / n, "Dense": self.dense / n},
                "membrane_updates": self.mem_updates / n,
                "classification_accuracy": acc}


def neurobench_metrics(model, batches, labels=None):
    """NeuroBench's static and workload metrics of ``model`` on ``batches``, a list of
    encoded inputs [T, B, C, H, W] (one per NeuroBench batch); ``labels`` a list of [B]."""
    if not batches:
        raise ValueError("batches: expected at least one input batch")
    wc = WorkloadCounter(model, batches[0].shape[2:])
    for i, x in enumerate(batches):
        wc.add(x, None if labels is None else labels[i])
    return {**static_metrics(model), **wc.compute()}


__all__ = ["WorkloadCounter", "neurobench_metrics", "static_metrics"]
