"""Exact operation counts: int64 ``[B, T]`` arrays per layer, per sample and per time step.

See the conventions in :mod:`snnlite.event` for what each kind counts.
"""
from dataclasses import dataclass, field

import numpy as np

KINDS = ("in_events", "out_spikes", "synops", "macs", "acs", "bias_adds", "neuron_updates")


@dataclass
class LayerCounts:
    """Counts of one population (a report row). Each kind is int64 [B, T];
    ``projection_synops`` maps each incoming projection's name to its synops [B, T]."""

    name: str
    kind: str  # lif | readout | maxpool
    desc: str
    neurons: int
    in_events: np.ndarray
    out_spikes: np.ndarray
    synops: np.ndarray
    macs: np.ndarray
    acs: np.ndarray
    bias_adds: np.ndarray
    neuron_updates: np.ndarray
    projection_synops: dict = field(default_factory=dict)

    @classmethod
    def zeros(cls, pop, B, T):
        z = {k: np.zeros((B, T), np.int64) for k in KINDS}
        proj = {p.name: np.zeros((B, T), np.int64) for p in pop.projections}
        return cls(pop.name, pop.kind, pop.describe(), pop.size, projection_synops=proj, **z)

    def firing_rate(self):
        """[B] spikes per neuron per step (0 for the non-spiking readout)."""
        T = self.out_spikes.shape[1]
        return self.out_spikes.sum(1) / float(self.neurons * T)


@dataclass
class Counts:
    """Counts of a whole run: ``layers`` in forward order; ``input_events`` [B, T] are the
    input spikes (``mode == "events"``) or the input elements presented (``"dense"``)."""

    layers: list
    input_events: np.ndarray
    mode: str

    @property
    def shape(self):
        return self.input_events.shape

    def layer(self, name):
        for lc in self.layers:
            if lc.name == name:
                return lc
        raise KeyError(f"no layer named {name!r}; layers: {[lc.name for lc in self.layers]}")

    def total(self, kind):
        """[B, T] sum of ``kind`` over layers."""
        if kind not in KINDS:
            raise ValueError(f"kind: expected one of {KINDS}, got {kind!r}")
        return sum(getattr(lc, kind) for lc in self.layers)

    def per_sample(self, kind):
        """[B] total of ``kind`` per sample (over layers and steps)."""
        return self.total(kind).sum(1)

    def firing_rate(self):
        """[B] spikes per spiking neuron per step over all LIF layers."""
        lif = [lc for lc in self.layers if lc.kind == "lif"]
        n = sum(lc.neurons for lc in lif) * self.shape[1]
        return sum(lc.out_spikes.sum(1) for lc in lif) / float(max(n, 1))

    def select(self, samples):
        """Counts of a subset of samples (an index array or slice into B)."""
        layers = [LayerCounts(lc.name, lc.kind, lc.desc, lc.neurons,
                              projection_synops={k: v[samples] for k, v in
                                                 lc.projection_synops.items()},
                              **{k: getattr(lc, k)[samples] for k in KINDS})
                  for lc in self.layers]
        return Counts(layers, self.input_events[samples], self.mode)

    @staticmethod
    def concat(parts):
        """Join the counts of consecutive batches along B."""
        first = parts[0]
        layers = []
        for i, lc in enumerate(first.layers):
            same = [p.layers[i] for p in parts]
            layers.append(LayerCounts(
                lc.name, lc.kind, lc.desc, lc.neurons,
                projection_synops={k: np.concatenate([s.projection_synops[k] for s in same])
                                   for k in lc.projection_synops},
                **{k: np.concatenate([getattr(s, k) for s in same]) for k in KINDS}))
        return Counts(layers, np.concatenate([p.input_events for p in parts]), first.mode)

    def mismatches(self, other):
        """Human-readable differences from ``other`` (empty if every count is equal)."""
        out = []
        if self.mode != other.mode:
            out.append(f"mode {self.mode} != {other.mode}")
        if not np.array_equal(self.input_events, other.input_events):
            out.append("input_events differ")
        if [lc.name for lc in self.layers] != [lc.name for lc in other.layers]:
            return out + ["layer names differ"]
        for a, b in zip(self.layers, other.layers):
            for k in KINDS:
                x, y = getattr(a, k), getattr(b, k)
                if x.shape != y.shape or not np.array_equal(x, y):
                    out.append(f"{a.name}.{k}: {x.sum()} != {y.sum()} (sums), "
                               f"{np.count_nonzero(x != y) if x.shape == y.shape else 'shape'}"
                               " entries differ")
            for k, x in a.projection_synops.items():
                y = b.projection_synops.get(k)
                if y is None or not np.array_equal(x, y):
                    out.append(f"{a.name}: synops of projection {k} differ")
        return out
