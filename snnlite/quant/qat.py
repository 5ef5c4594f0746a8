"""Quantization-aware finetuning: the model trains through fake quantization, with the
straight-through estimator.

:class:`QATModel` wraps a trained model. Its forward runs a *folded view* of the traced
graph: every Conv2d/Linear and the BatchNorm after it become one layer whose weights and
bias are, at every step, the integers that :func:`~snnlite.quant.quantizer.
quantize_population` makes of the folded float weights (the same function and the same
folding as post-training quantization: quantizing the finetuned checkpoint gives exactly
these integers), times their step; a dense (direct-coded) input is rounded to its integer
codes first. BatchNorm statistics are frozen (running mean and variance, as the integer
model folds them); gamma, beta and the weights train.

Backward: the straight-through estimator passes the gradient of a quantized weight to the
folded float weight where the weight was not clipped (0 where it was), then by the chain rule
of the fold, ``w' = w * s``, ``b' = (b - mean) * s + beta``, ``s = gamma / sqrt(var + eps)``,
to the conv/linear weight and bias and to BN's gamma and beta. The step is held constant
(not learned). What the float forward does not model: the integer leak's rounding towards
minus infinity and membrane saturation (see :mod:`snnlite.quant.formats`).

Parameters, ``state_dict`` names and the traced graph are the wrapped model's, so a
checkpoint of a quantization-aware run is an ordinary float checkpoint; its config's
``quantize`` entry records the format and the input step (``snnlite quantize`` reuses both).
"""
import numpy as np

from ..event.compile import compile_model
from ..nn.fold import fold_bn
from ..nn.graph import Graph, Node, trace
from ..nn.layers import Conv2d, Linear
from ..nn.module import Module, is_time_broadcast
from ..nn.plan import Plan
from .formats import QFormat
from .ptq import CALIBRATION_IMAGES, calibrate, input_kind
from .quantizer import quantize_population


class _Member:
    """One synaptic projection of a population: its module, the BN folded into it, the
    pooling of its input, the real value of one input unit, and its view layer."""

    def __init__(self, proj, module, bn, unit, view):
        self.proj, self.module, self.bn, self.unit, self.view = proj, module, bn, unit, view


class QATModel(Module):
    """``model`` training through fake quantization in format ``fmt`` (a QFormat) for
    inputs of per-sample ``input_shape``, ``input_kind`` (``dense`` with ``input_step``,
    or ``events``). See the module docstring."""

    def __init__(self, model, fmt, input_shape, input_kind, input_step=None):
        super().__init__()
        if input_kind == "dense" and not (input_step and input_step > 0):
            raise ValueError("input_step: dense input needs a positive step")
        self.__dict__.update(_model=model, fmt=fmt, input_kind=input_kind,
                             input_step=input_step, input_shape=tuple(input_shape))
        self._build()

    # ------------------------------------------------------------------ the view
    def _build(self):
        model, shape = self._model, self.input_shape
        graph = trace(model, shape)
        net = compile_model(model, shape, dtype=np.float64)  # the populations (structure)
        modules = dict(model.named_modules())
        dtype = model.dtype
        views, folded_into = {}, {}
        for node in graph.nodes:
            if node.kind in ("conv", "linear"):
                m = node.module
                views[node.name] = (Conv2d(m.in_channels, m.out_channels, m.kernel_size,
                                           m.stride, m.padding, bias=True, dtype=dtype)
                                    if node.kind == "conv" else
                                    Linear(m.in_features, m.out_features, bias=True,
                                           dtype=dtype))
                views[node.name].bias.data[:] = 0
            elif node.kind == "bn":
                folded_into[node.inputs[0]] = node.module
        self._groups = []
        for p in net.populations:
            if p.kind == "maxpool":
                continue
            members = []
            for q in p.projections:
                if q.kind == "identity":
                    members.append(_Member(q, None, None, 1.0, None))
                    continue
                unit = self.input_step if (q.source < 0 and self.input_kind == "dense") \
                    else 1.0
                members.append(_Member(q, modules[q.name], folded_into.get(q.name), unit,
                                       views[q.name]))
            lif = p.kind == "lif"
            self._groups.append((p, members, p.v_threshold if lif else None,
                                 p.v_reset if lif else None))
        alias, nodes = {}, []
        for node in graph.nodes:
            inputs = tuple(alias.get(i, i) for i in node.inputs)
            if node.kind == "bn":
                alias[node.name] = inputs[0]
                continue
            module = views.get(node.name, node.module)
            nodes.append(Node(node.name, node.kind, module, inputs, node.in_shape,
                              node.out_shape))
        self._views = views
        self._plan = Plan(Graph(nodes, alias.get(graph.output, graph.output)), fuse=False)
        self._saved = None

    def quantized(self):
        """[(population, members, QValues)] of the current weights (float64 folding)."""
        out = []
        for p, members, v_th, v_reset in self._groups:
            weights, bias = [], None
            for mb in members:
                if mb.module is None:
                    weights.append(None)
                    continue
                m = mb.module
                w = m.weight.data.astype(np.float64)
                b = None if m.bias is None else m.bias.data.astype(np.float64)
                if mb.bn is not None:
                    w, b = fold_bn(w, b, mb.bn)
                weights.append(w * mb.proj.weight_scale)
                if b is not None:
                    bias = b if bias is None else bias + b
            vals = quantize_population(weights, [mb.unit for mb in members], bias, v_th,
                                       v_reset, self.fmt, p.shape[0])
            out.append((p, members, vals))
        return out

    def _sync(self):
        """View weights <- the quantized values times their steps; view gradients <- 0."""
        self._saved = self.quantized()
        for p, members, vals in self._saved:
            first = True
            for mb, wi in zip(members, vals.weights):
                if mb.view is None:
                    continue
                S = vals.step.reshape((-1,) + (1,) * (wi.ndim - 1))
                v = mb.view
                v.weight.data[...] = wi * S / (mb.proj.weight_scale * mb.unit)
                v.bias.data[...] = vals.bias * vals.step if (first and vals.bias is not None) \
                    else 0
                first = False
                v.weight.grad[...] = 0
                v.bias.grad[...] = 0

    def _quantize_input(self, x):
        if self.input_kind != "dense":
            return x
        bc = is_time_broadcast(x)
        xs = x[:1] if bc else x
        m = self.fmt.x_max
        q = (np.clip(np.rint(xs / self.input_step), -m, m) * self.input_step).astype(x.dtype)
        return np.broadcast_to(q, x.shape) if bc else q

    # ------------------------------------------------------------------ Module contract
    def forward(self, x):
        self._sync()
        return self._plan.forward(self._quantize_input(x))

    def backward(self, dy):
        if self._saved is None:
            raise RuntimeError("QATModel.backward: call forward first")
        dx = self._plan.backward(dy, self._model.requires_input_grad)
        for p, members, vals in self._saved:
            gb = None
            for mb, mask in zip(members, vals.in_range):
                if mb.view is None:
                    continue
                if gb is None:
                    gb = mb.view.bias.grad.astype(np.float64)  # the population's bias
                gw = mb.view.weight.grad.astype(np.float64) * mask  # straight through
                m, bn = mb.module, mb.bn
                if bn is None:
                    m.weight.grad += gw.astype(m.weight.grad.dtype)
                    if m.bias is not None:
                        m.bias.grad += gb.astype(m.bias.grad.dtype)
                    continue
                rstd = 1.0 / np.sqrt(bn.running_var.astype(np.float64) + bn.eps)
                s = bn.weight.data.astype(np.float64) * rstd
                w = m.weight.data.astype(np.float64)
                shape = (-1,) + (1,) * (w.ndim - 1)
                m.weight.grad += (gw * s.reshape(shape)).astype(m.weight.grad.dtype)
                b = 0.0 if m.bias is None else m.bias.data.astype(np.float64)
                dgamma = (gw * w).reshape(w.shape[0], -1).sum(1) * rstd + \
                    gb * (b - bn.running_mean.astype(np.float64)) * rstd
                bn.weight.grad += dgamma.astype(bn.weight.grad.dtype)
                bn.bias.grad += gb.astype(bn.bias.grad.dtype)
                if m.bias is not None:
                    m.bias.grad += (gb * s).astype(m.bias.grad.dtype)
        self._saved = None
        return dx

    def dataflow(self, x):
        return self._model.dataflow(x)

    def named_children(self):
        return self._model.named_children()

    def named_parameters(self, prefix=""):
        return self._model.named_parameters(prefix)

    def named_modules(self, prefix=""):
        yield prefix, self
        for name, m in self._model.named_modules(prefix):
            if m is not self._model:
                yield name, m

    def modules(self):
        yield self
        for _, m in self.named_modules():
            if m is not self:
                yield m

    def state_dict(self, prefix=""):
        return self._model.state_dict(prefix)

    def load_state_dict(self, state, strict=True):
        return self._model.load_state_dict(state, strict)

    def _slots(self, prefix=""):
        return self._model._slots(prefix)

    def train(self, mode=True):
        self.training = mode
        self._model.train(mode)
        for v in self._views.values():
            v.train(mode)
        return self

    def astype(self, dtype):
        self._model.astype(dtype)
        self._build()
        return self

    @property
    def requires_input_grad(self):
        return self._model.requires_input_grad

    @property
    def model(self):
        """The wrapped (float) model."""
        return self._model

    def __repr__(self):
        return f"QATModel({self.fmt.describe()}, input {self.input_kind})\n{self._model!r}"


def attach(model, quantize, train_set, encoding, T):
    """(QATModel, record) for the ``quantize`` config entry of a run (a QFormat dict; an
    ``input_step`` in it is kept, else calibrated on the first training images). ``record``
    is the full entry to store: the format, ``input_step`` and ``encoding``."""
    q = dict(quantize)
    step, enc = q.pop("input_step", None), q.pop("encoding", encoding)
    if enc != encoding:
        raise ValueError(f"quantize: recorded for {enc!r} input, this run trains on "
                         f"{encoding!r}")
    fmt = QFormat.from_dict(q, "quantize")
    kind = input_kind(encoding)
    if kind == "dense" and step is None:
        images = train_set.images[:CALIBRATION_IMAGES].astype(np.float32) / np.float32(255)
        step = calibrate(images, train_set.mean, train_set.std, encoding, T, fmt)[0]["step"]
    shape = train_set.images.shape[1:]
    record = dict(fmt.as_dict(), input_step=step if kind == "dense" else None,
                  encoding=encoding)
    return QATModel(model, fmt, shape, kind, step), record


__all__ = ["QATModel", "attach"]
