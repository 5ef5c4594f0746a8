"""Event-driven inference, exact spike and synaptic-operation counts, energy estimates.

    net = compile_model(model)                # BN folded, pooling folded, residuals as projections
    net64 = compile_model(model, dtype=np.float64)   # float32 by default; float64 for exactness
    res = net.run(encoding.ttfs(x, T))        # res.logits [B, K]; res.counts: int64 [B, T]
    ref, logits, spikes = dense_counts(net, model, encoding.ttfs(x, T))   # the same, independently
    e = energy(res.counts, get_table("cmos45_fp32"))                    # pJ per sample, ESTIMATES

CONVENTIONS (defined here and nowhere else)
-------------------------------------------
Layer. A report row is a population of neurons together with every synaptic projection into
it, named after its main synaptic module (dotted PyTorch name: ``"3"``, ``"layer1.0.conv2"``,
``"fc"``). The second layer of a residual block also holds the shortcut projection: the
identity (``<block>.shortcut``: each spike adds 1 to the same neuron) or the 1x1 downsample
conv (``<block>.downsample.0``), both fed by the block's input spikes. The readout (the
synaptic layer before ``TimeMean``) does not spike: the logits are the mean over T of its
currents. ``MaxPool2d`` on spikes is a layer without synapses or arithmetic (a pooled neuron
fires when any neuron of its window fires). Neurons: LIF, IF (a LIF with tau = inf) and
CubaLIF (its synaptic current updated in the same neuron update). A ``Recurrent`` layer is
one population that also holds its own recurrent projection (``<layer>.recurrent``): the
layer's spikes of step t - 1 through the feedback weights, none at step 0, the feedback
bias joining the layer's bias from step 1 on.

Folding. BatchNorm (running statistics) folds into the preceding conv/linear in float64:
``w' = w * s``, ``b' = (b - mean) * s + beta`` with ``s = gamma / sqrt(var + eps)``.
``AvgPool2d(k)`` between spiking layers folds into the next layer's synapses: a spike at
(y, x) reaches the targets of its pooled position (y // k, x // k) with weights ``w' / k^2``
(the final global ``AvgPool2d(8) + Flatten + Linear`` is a linear layer with weights / 64);
``SumPool2d(k)`` folds the same way with the weights unscaled.
Precision. ``compile_model(model, dtype=)`` sets the dtype of the engine's weights, biases,
currents and membranes: float32 (the default, for speed) or float64. In float64 its spikes
equal those of a float64 dense forward exactly. In float32 (and against any float32
forward) a spike can flip where a membrane lies within float32 rounding of the threshold,
and everything downstream of it follows; ``snnlite audit`` therefore runs the model and the
engine in float64. Counts never depend on the dtype except through such flips: for the
same spikes they are the same integers.

Input events. A spike input is binary ``[T, B, C, H, W]`` (or an event list of
(t, b, c, y, x) rows); each 1 is one event. A dense input (direct coding) is presented whole
at every step; each of its C*H*W elements counts as an input event of the first layer.
``in_events`` of a layer is the number of events arriving on all its projections in a step.

synop: one (event, target neuron) pair, the event's weight added into the target's current.
Counted border-exact (SpikingJelly's SynOpCounter, sinabs): the event's REAL fan-out, so an
event near a zero-padded border reaches fewer targets, and with stride s only the positions
on the stride grid reach anything (a 1x1 stride-2 shortcut ignores odd positions). Every
event counts on its own, even when pooling sends several onto one pooled position; a
linear layer's event reaches all O outputs; an identity shortcut's reaches 1.
``synops = acs + macs``.

AC: a synop driven by a spike, an accumulate (weight addition, no multiply).
MAC: a synop driven by a dense input value, a multiply-accumulate; border-exact too (padding
zeros are not multiplied, zero-valued pixels are). Under direct coding the first layer does
its MACs at EVERY step: the engine computes the repeated frame once per sample, but counts
what clock-driven hardware that is fed the frame at each step does, as the D2E paper's
accounting does (divide by T for the compute-once figure).

bias_add: one addition per neuron per step in every layer with a bias (folded BN gives one),
the readout included. neuron_update: one charge-fire-reset of one LIF neuron at one step,
for every LIF neuron at every step (clock-driven: the leak acts with or without input, and
is part of this update, not a separate count); the readout and max-pool layers have none.
out_spikes: spikes emitted; firing rate = out_spikes / (neurons * T).

All counts are exact int64 ``[B, T]`` arrays per layer: per sample and per step, never batch
sums, independent of the batch size.

Energy (ESTIMATES): ``macs * E_mac + acs * E_ac + bias_adds * E_bias + neuron_updates *
E_neuron`` with per-op energies from a named table (``E_bias`` defaults to ``E_ac``,
``E_neuron`` to 0: Horowitz 2014 gives no figure for it). Memory access, data movement and
event routing are not modelled.
"""
from .compile import compile_model
from .counts import KINDS, Counts, LayerCounts
from .dense import dense_counts, dense_forward
from .engine import EventResult
from .graph import EventNet, Population, Projection

__all__ = ["KINDS", "Counts", "EventNet", "EventResult", "LayerCounts", "Population",
           "Projection", "compile_model", "dense_counts", "dense_forward"]
