"""NIR (Neuromorphic Intermediate Representation) export and import, with h5py only.

API
---
``export_nir(model, path, dt=1e-4, input_shape=(3, 32, 32))`` writes ``model`` as a NIR
graph; ``import_nir(path, dt=None) -> Module`` rebuilds a snnlite model from one;
``read_nir(path) -> dict`` returns the raw graph (``version, nodes, edges, metadata``).
The ``nir`` package is not needed: files are written in the layout ``nir.read`` expects
(nir 1.0.4 to 1.0.8 load them with type checking on).

The time step. NIR's neurons are ODEs; a step of ``dt`` turns them into snnlite's
discrete neurons, so the file's time constants are ``tau * dt``. The default ``dt = 1e-4``
is what SpikingJelly's and snnTorch's importers assume, so their default calls rebuild the
same neurons; Norse's ``from_nir`` needs ``dt=1e-4`` passed. ``dt`` is recorded in the
graph metadata, and ``import_nir`` reads it from there; a file without it (written by
another tool) that holds neurons must be given ``dt``, and the error says which values its
parameters imply.

File layout (NIR 1.0)::

    /version                     "1.0.8" (variable-length string)
    /node/type                   "NIRGraph"
    /node/edges                  (E, 2) strings: (source, destination) node names
    /node/metadata/<key>         graph metadata (see below)
    /node/nodes/<name>/type      node type, then one dataset per node field,
    /node/nodes/<name>/<field>   and an optional metadata group

Layer mapping
-------------
- ``Conv2d`` -> ``Conv2d`` (weight [O, C, k, k], bias, stride, padding, dilation 1,
  groups 1, input_shape [H, W]); ``Linear`` -> ``Affine`` (weight [out, in], bias).
- ``BatchNorm2d/1d`` is folded into the convolution or linear layer before it (NIR has
  no batch norm): with ``s = weight / sqrt(running_var + eps)``, ``W' = W * s`` per
  output channel and ``b' = (b - running_mean) * s + bias``, computed in float64 and
  stored in the model's dtype. The graph reproduces the model in eval mode. Which batch
  norm went where is recorded in graph metadata ``folded_batch_norm`` ({node: module}),
  not on the node (nir 1.0.4 refuses metadata on a Conv2d).
- ``AvgPool2d(k)`` / ``SumPool2d(k)`` -> ``AvgPool2d`` / ``SumPool2d`` (kernel_size =
  stride = [k, k], padding [0, 0]); ``Scale`` and ``Threshold`` -> nodes of those names.
- ``Flatten`` -> ``Flatten(start_dim=0, end_dim=-1)``: NIR shapes exclude batch and time,
  so flattening every remaining axis starts at 0; ``input_type`` is [C, H, W].
- ``LIF``, ``IF``, ``CubaLIF`` -> ``LIF``, ``IF``, ``CubaLIF`` (see :mod:`.neurons`), each
  parameter an array of the layer's neuron shape.
- ``Recurrent(neuron, recurrent)`` -> a cycle: the neuron node (named after the layer) and
  its feedback ``<name>_recurrent`` (``Affine``, or ``Linear`` without bias), with edges
  neuron -> feedback -> neuron. NIR's convention for a cycle: an edge that closes it
  carries the previous step's output, zero at the first step.
- Residual connections are edges: NIR edges are identity connections and a node with
  several incoming edges receives their sum. A ``BasicBlock``'s add is the two edges
  into its second LIF (from the last convolution and from the shortcut: the 1x1
  convolution, or the block's input node itself). No explicit sum node is needed.
- ``TimeMean`` (the classifier readout) is no node: graph metadata ``readout =
  "mean_over_time"`` says the output is averaged over time steps.
- Not exportable: ``MaxPool2d`` (NIR has no max pooling), batch norm not directly after
  a convolution or linear layer and other layers without a NIR equivalent.

LIF mapping
-----------
NIR's LIF is ``tau dv/dt = (v_leak - v) + R I``, spiking when v crosses ``v_threshold``
and then jumping to ``v_reset``. One forward-Euler step of length ``dt`` gives
``v <- v + dt / tau_nir * ((v_leak - v) + R I)``. snnlite's (SpikingJelly's) LIF charges
``h = v + (x - (v - v_reset)) / tau`` (decay_input) or ``h = v - (v - v_reset) / tau + x``
(otherwise). The two agree exactly with::

    tau_nir = tau * dt,  v_leak = v_reset,  R = 1 (decay_input) or R = tau (otherwise)

and ``v_threshold``, ``v_reset`` unchanged, under these conditions, all recorded in the
graph metadata: time is discretised by forward Euler with step ``dt``; within a step the
neuron charges, fires, then resets; a neuron fires when ``v >= v_threshold`` (a tie
spikes; NIR's text says ``>``); the membrane starts at ``v_reset``; input currents are
constant over a step. Soft reset (``v_reset=None``: subtract the threshold, leak towards
0) has no NIR LIF equivalent: it is written with ``v_leak = v_reset = 0`` and node
metadata ``reset_mode = "soft"``, which :func:`import_nir` honours and other NIR readers
will take for a hard reset to 0.

IF and CubaLIF map the same way (the full table: :mod:`.neurons`): IF's ``dv/dt = R I``
over one step adds ``dt * R * x``, so ``r = 1 / dt`` (SpikingJelly's convention; sinabs,
snnTorch and Norse write ``r = 1`` and ignore dt, so their IF graphs import with
``dt=1``); CubaLIF's current is ``tau_syn dI/dt = -I + w_in S``, its membrane as LIF's
with ``R I`` as input, the membrane charged from the new current (no extra delay).

Graph metadata: ``snnlite_version, dt, threshold (">="), reset_mode ("hard", "soft",
"mixed" or "none"), decay_input (bool, or "mixed"), neurons (lif, if, cuba_lif or
"mixed"), readout, discretisation ("forward_euler"), initial_membrane ("v_reset"),
recurrence ("previous_step"), folded_batch_norm``. Neuron node metadata: ``reset_mode,
detach_reset, surrogate_alpha`` and, for LIF, ``decay_input``. ``v_reset`` is written only
where it is not NIR's default 0 (nir 1.0.4 has no such field; a nonzero ``v_reset`` needs
nir >= 1.0.5 to be read).

Import accepts graphs made of :data:`SUPPORTED_NODES` with the parameters snnlite can
represent (square kernels, dilation 1, groups 1, pooling with stride = kernel and no
padding, full flattening, neuron parameters equal across the neurons of a layer, LIF with
``R`` in {1, tau} and ``v_leak = v_reset``, IF with ``r * dt = 1``); optional fields take
NIR's defaults (``v_reset = 0``, ``w_in = 1``, no ``input_shape``); anything else raises
``ValueError`` naming the node (an unknown type: with the list of supported ones).
Nested ``NIRGraph`` nodes are flattened (inner node ``n`` of ``g`` becomes ``g.n``); each
cycle must be one neuron whose output returns to it through ``Affine``/``Linear``/``Scale``
nodes, and becomes a :class:`~snnlite.nn.Recurrent` layer named after the neuron. A chain
becomes a :class:`~snnlite.nn.Sequential`, any other graph a :class:`~snnlite.nn.GraphModule`.

Export reads the model's traced graph (:func:`snnlite.nn.trace`), never its module tree,
so any container exports. Modules: :mod:`.export` (model -> graph dict), :mod:`.h5` (the
HDF5 file, both ways, with bounded reads), :mod:`.neurons` (neuron parameters and dt),
:mod:`.graphs` (flattening, cycles, order), :mod:`.importer` (graph dict -> model).
"""
from ...nn import GraphModule, SumPool2d
from .export import DEFAULT_DT, export_nir, model_to_nir
from .h5 import MAX_TENSOR_BYTES, MAX_TOTAL_BYTES, NIR_VERSION, read_nir
from .importer import SUPPORTED_NODES, import_nir

__all__ = ["DEFAULT_DT", "GraphModule", "MAX_TENSOR_BYTES", "MAX_TOTAL_BYTES", "NIR_VERSION",
           "SUPPORTED_NODES", "SumPool2d", "export_nir", "import_nir", "model_to_nir",
           "read_nir"]
