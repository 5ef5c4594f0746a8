"""The compiled inference graph: populations of neurons and the synaptic projections into them.

A :class:`Population` is one layer of the report: a group of neurons (LIF, the readout, or a
spike max-pool) together with every projection that feeds it. A :class:`Projection` is one
synaptic layer with BN already folded in, reading the spikes of an earlier population (or
the network input), optionally average-pooled on the way. Shapes are (C, H, W); a 1-D
population of F neurons is (F, 1, 1). Weights and biases are kept in float64 here; the
engine runs a packed copy in the net's dtype (:class:`~snnlite.event.program.Program`).
"""
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Projection:
    """One synaptic layer into a population.

    kind: ``conv`` (weight (O, C, k, k)), ``linear`` (weight (O, F), F the flattened pooled
    source) or ``identity`` (no weight, each spike adds 1 to the same neuron).
    source: index of the source population, -1 for the network input.
    pool: pooling (kernel = stride = pool) of the source folded into the weights, which are
    scaled by ``gain``: 1 / pool^2 for average pooling (None), 1 for sum pooling.
    delay: 1 for a recurrent projection (a population's own spikes of the previous step,
    nothing at the first step), else 0.
    """

    name: str
    kind: str
    source: int
    src_shape: tuple
    out_shape: tuple
    weight: np.ndarray | None = None
    stride: int = 1
    padding: int = 0
    pool: int = 1
    gain: float | None = None
    delay: int = 0

    @property
    def weight_scale(self):
        """The factor pooling puts on the weights (see ``gain``)."""
        return 1.0 / self.pool ** 2 if self.gain is None else self.gain

    @property
    def kernel(self):
        return self.weight.shape[-1] if self.kind == "conv" else 1

    def describe(self):
        C, O = self.src_shape[0], self.out_shape[0]
        if self.kind == "conv":
            k = self.kernel
            s = f"conv{k}x{k}/{self.stride} {C}->{O}"
        elif self.kind == "linear":
            s = f"linear {self.weight.shape[1]}->{O}"
        else:
            s = "identity"
        if self.pool > 1:
            s += f" ({'avg' if self.gain is None else 'sum'}pool{self.pool} in)"
        return s + (" (recurrent, t-1)" if self.delay else "")

    def dense_connections(self):
        """Connections a full input frame uses: (input element, output neuron) pairs whose
        weight multiplies a real (non-padding) input. The MACs of one step on dense input."""
        C, H, W = self.src_shape
        O = self.out_shape[0]
        if self.kind == "linear":
            return int(self.weight.shape[1]) * O
        if self.kind == "identity":
            return C * H * W
        k, s, p = self.kernel, self.stride, self.padding
        Ho, Wo = self.out_shape[1:]

        def valid(n, m):  # (output, tap) pairs landing inside [0, n)
            return sum(1 for o in range(m) for t in range(k) if 0 <= o * s - p + t < n)

        return C * O * valid(H, Ho) * valid(W, Wo)


@dataclass
class Population:
    """Neurons of one layer and the projections into them.

    kind: ``lif`` (spiking), ``readout`` (non-spiking accumulator; logits are its mean
    input over time) or ``maxpool`` (a pooled spike is the OR of its window; ``source`` and
    ``pool`` say from where; no synapses, no arithmetic).
    dynamics: of a ``lif`` population, ``lif`` (LIF or IF: an IF is tau = inf, no input
    decay) or ``cuba_lif`` (CubaLIF: ``tau`` is tau_mem, with ``tau_syn, w_in, r,
    v_leak``).
    name: the report row, the dotted name of the main synaptic layer (or of the pooling);
    neuron: dotted name of the module whose output this population reproduces.
    bias: (C,) float64 added to every neuron of a channel at every step, or None;
    rec_bias: the bias of a recurrent projection, added from the second step on, or None.
    """

    name: str
    kind: str
    shape: tuple
    neuron: str
    projections: list = field(default_factory=list)
    bias: np.ndarray | None = None
    tau: float = 2.0
    v_threshold: float = 1.0
    v_reset: float | None = 0.0
    decay_input: bool = True
    source: int = -1
    pool: int = 1
    dynamics: str = "lif"
    tau_syn: float = 2.0
    w_in: float = 1.0
    r: float = 1.0
    v_leak: float = 0.0
    rec_bias: np.ndarray | None = None

    def biased(self, t):
        """Whether the neurons get a bias added at step t (counted as bias_adds)."""
        return self.bias is not None or (t > 0 and self.rec_bias is not None)

    @property
    def size(self):
        C, H, W = self.shape
        return C * H * W

    def describe(self):
        if self.kind == "maxpool":
            return f"maxpool{self.pool} (spikes)"
        tail = {"lif": {"lif": "LIF", "cuba_lif": "CubaLIF"}[self.dynamics],
                "readout": "mean over T"}[self.kind]
        if self.kind == "lif" and self.tau == float("inf"):
            tail = "IF"
        return " + ".join(p.describe() for p in self.projections) + f" -> {tail}"


class EventNet:
    """An SNN compiled for event-driven inference (see :func:`snnlite.event.compile_model`).

    ``run(x)`` takes ``[T, B, C, H, W]`` input (binary spikes, or dense floats under direct
    coding) and returns an :class:`~snnlite.event.engine.EventResult`: logits ``[B, K]`` and
    exact per-sample, per-step counts. ``run_events`` takes an event list instead.
    """

    def __init__(self, input_shape, populations, dtype=np.float32):
        self.input_shape = tuple(int(d) for d in input_shape)
        self.populations = list(populations)
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise TypeError(f"dtype: expected float32 or float64, got {self.dtype}")
        self._program = None

    @property
    def program(self):
        """The packed arrays the engine runs (built on first use)."""
        if self._program is None:
            from .program import Program
            self._program = Program(self, self.dtype)
        return self._program

    @property
    def readout(self):
        return self.populations[-1]

    def run(self, x, mode="auto", record=False):
        """Run ``x`` [T, B, C, H, W]; ``mode`` is ``events`` (x binary), ``dense`` (MACs) or
        ``auto`` (events if x is binary). ``record`` keeps every population's spikes."""
        from .engine import run
        return run(self, x, mode, record)

    def run_events(self, events, T, B, record=False):
        """Run an event list: int array (n, 5) of (t, b, c, y, x) input spike coordinates."""
        from .engine import events_to_dense, run
        return run(self, events_to_dense(events, T, B, self.input_shape), "events", record)

    def __repr__(self):
        lines = [f"EventNet(input {self.input_shape}, {self.dtype}"]
        for p in self.populations:
            lines.append(f"  {p.name}: {p.describe()}  [{p.size} neurons, {p.shape}]")
        return "\n".join(lines) + "\n)"
