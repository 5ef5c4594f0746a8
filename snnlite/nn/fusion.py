"""Runs ``[Conv2d ->] BatchNorm2d [+ residual] -> LIF or IF [-> AvgPool2d]`` as one
fused pass.

Which nodes of a traced graph fuse is decided here (:func:`fusion_groups`), from the graph
alone; :mod:`snnlite.nn.plan` runs the groups.

The fused pass gives the same outputs, statistics and spike counts as calling the
modules one after the other (bit for bit forward; gradients to rounding) while reading
and writing each large activation once instead of three times. The modules keep their
parameters, buffers and names: fusion is an execution detail, not a different model.

A convolution in front of the group joins it in inference only (every module in eval
mode): each sample is then convolved event by event, normalised and fired with its
membranes in cache (:mod:`snnlite.kernels.conv_lif`). In training, and for the samples of
a dense input (which take Winograd or im2col), the convolution runs on its own first.
"""
import numpy as np

from . import functional as F
from .layers import AvgPool2d, BatchNorm2d, Conv2d
from .module import first_step, is_time_broadcast
from .neuron import IF, LIF

NEURONS = (LIF, IF)  # the neurons the fused kernel runs (IF: a LIF with tau = inf)


def _running_stats(bn):
    """(mean, 1 / sqrt(var + eps)) of a BatchNorm2d's running statistics, in float64."""
    mean, var = bn.running_mean.astype(np.float64), bn.running_var.astype(np.float64)
    return mean, 1.0 / np.sqrt(var + bn.eps)


class FusedBNLIF:
    """Forward/backward of ``bn -> lif [-> pool]`` with the modules' own state.

    With a ``residual`` in forward, the LIF input is ``BN(x) + residual`` and backward
    leaves the residual's gradient in ``dresidual``.
    """

    def __init__(self, bn, lif, pool=None):
        self.bn, self.lif, self.pool = bn, lif, pool
        self.requires_input_grad = True

    def forward(self, x, residual=None):
        """LIF(BN(x) [+ residual]) [pooled]; the residual is added after the norm."""
        bn, lif = self.bn, self.lif
        F.check_float("x", x, 5)
        if x.shape[2] != bn.num_features:
            raise ValueError(f"BatchNorm2d: expected {bn.num_features} channels, got shape "
                             f"{x.shape}")
        T = x.shape[0]
        self._bc = is_time_broadcast(x)
        x0 = np.ascontiguousarray(first_step(x))
        C = x0.shape[2]
        if bn.training:
            mean, var = F.batch_norm_stats(x0.reshape(-1, C, x0.shape[3] * x0.shape[4]))
            bn.update_running_stats(mean, var, x.size // C)
            rstd = 1.0 / np.sqrt(var + bn.eps)
        else:
            mean, rstd = _running_stats(bn)
        k = self.pool.kernel_size if self.pool is not None else 1
        out, h, lif.spike_count = F.bn_lif_forward(
            x0, mean, rstd, bn.weight.data, bn.bias.data, T, lif.tau, lif.v_threshold,
            lif.v_reset, lif.decay_input, k, save_h=lif.training, residual=residual)
        train = bn.training and lif.training
        self._cache = (x0, mean, rstd, h) if train else None
        self._residual = residual is not None
        return out

    def backward(self, dy):
        if self._cache is None:
            raise RuntimeError("BatchNorm2d/LIF backward: call forward in training mode first")
        bn, lif = self.bn, self.lif
        x0, mean, rstd, h = self._cache
        self._cache = None
        k = self.pool.kernel_size if self.pool is not None else 1
        dx, dgamma, dbeta, self.dresidual = F.lif_bn_backward(
            dy, h, x0, mean, rstd, bn.weight.data, lif.tau, lif.v_threshold, lif.v_reset,
            lif.decay_input, lif.detach_reset, lif.surrogate_alpha, k,
            need_dx=self.requires_input_grad, need_dcur=self._residual)
        bn.weight.grad += dgamma.astype(bn.weight.grad.dtype)
        bn.bias.grad += dbeta.astype(bn.bias.grad.dtype)
        return dx


INFER_SPARSE_BELOW = 0.3
"""In inference, a convolution joined to its norm and neuron takes the event path for
images with a nonzero fraction below ``max(conv.sparse_below, INFER_SPARSE_BELOW)`` (none
where ``conv.sparse_below`` is 0): with the norm and the neuron fused, the event path beats
Winograd up to a higher density than the convolution alone does."""


class FusedConvBNLIF:
    """``conv -> bn -> lif [-> pool]`` (``FusedBNLIF`` after the convolution); in eval mode
    one pass per sample on the event path (see the module docstring)."""

    def __init__(self, conv, bn, lif, pool=None):
        self.conv, self.rest = conv, FusedBNLIF(bn, lif, pool)

    @property
    def requires_input_grad(self):
        return self.conv.requires_input_grad

    @requires_input_grad.setter
    def requires_input_grad(self, flag):
        self.conv.requires_input_grad = flag

    @property
    def dresidual(self):
        return self.rest.dresidual

    def forward(self, x, residual=None):
        conv, rest = self.conv, self.rest
        if conv.training or rest.bn.training or rest.lif.training or \
                not conv.sparse_below > 0:
            return rest.forward(conv.forward(x), residual=residual)
        return self._infer(x, residual)

    def backward(self, dy):
        return self.conv.backward(self.rest.backward(dy))

    def _infer(self, x, residual):
        conv, bn, lif, pool = self.conv, self.rest.bn, self.rest.lif, self.rest.pool
        F.check_float("x", x, 5)
        T = x.shape[0]
        x0 = first_step(x)
        mean, rstd = _running_stats(bn)
        k = pool.kernel_size if pool is not None else 1
        bias = None if conv.bias is None else conv.bias.data
        lif_args = (mean, rstd, bn.weight.data, bn.bias.data, T, lif.tau, lif.v_threshold,
                    lif.v_reset, lif.decay_input, k)
        out, counts, ok = F.conv_bn_lif_forward(
            x0, conv.weight.data, bias, conv.stride, conv.padding,
            max(conv.sparse_below, INFER_SPARSE_BELOW),
            *lif_args, residual=residual, ws=conv._ws)
        spikes = int(counts[ok].sum())
        dense = np.flatnonzero(~ok)
        if dense.size:  # samples with a dense image: the convolution on its own
            every = dense.size == ok.size
            xd = x0 if every else x0[:, dense]
            res = residual if every or residual is None else residual[:, dense]
            y, _, n = F.bn_lif_forward(conv.forward(xd), *lif_args, save_h=False,
                                       residual=res)
            if every:
                out = y
            else:
                out[:, dense] = y
            spikes += n
        conv._x, self.rest._cache = None, None
        lif.spike_count = spikes
        return out


def fusion_groups(graph):
    """The fused groups of a traced graph: ``[(names, residual)]`` with ``names`` the nodes
    run as one pass, ``([conv,] bn, lif)`` or ``([conv,] bn, lif, avgpool)``, or ``([conv,]
    bn, add, lif)`` where the LIF reads ``BN(x) + residual``; ``residual`` then names the
    add's other input. ``lif`` is a :class:`LIF` or an :class:`IF` (CubaLIF runs unfused).

    A group forms where the value between its nodes has no other reader: a
    ``BatchNorm2d`` read only by a ``LIF`` (or by an ``add`` read only by a LIF), an
    ``AvgPool2d`` after the LIF when it is the LIF's only reader, and a ``Conv2d`` in
    front when the norm is its only reader.
    """
    groups, used = [], set()

    def only(name, kind, cls):
        c = graph.consumers(name)
        return c[0] if len(c) == 1 and c[0].kind == kind and (
            cls is None or type(c[0].module) in cls) else None

    for bn in graph.of_kind("bn"):
        if type(bn.module) is not BatchNorm2d or bn.name in used:
            continue
        lif, add, residual = only(bn.name, "lif", NEURONS), None, None
        if lif is None:
            add = only(bn.name, "add", None)
            lif = add and only(add.name, "lif", NEURONS)
            if lif is None or add.inputs.count(bn.name) != 1:
                continue
            residual = add.inputs[1] if add.inputs[0] == bn.name else add.inputs[0]
        pool = only(lif.name, "avgpool", (AvgPool2d,))
        src = graph[bn.inputs[0]]
        conv = src if src.kind == "conv" and type(src.module) is Conv2d and \
            graph.consumers(src.name) == [bn] else None
        names = ((conv.name,) if conv else ()) + (bn.name,) + ((add.name,) if add else ()) + \
            (lif.name,) + ((pool.name,) if pool else ())
        used.update(names)
        groups.append((names, residual))
    return groups


__all__ = ["FusedBNLIF", "FusedConvBNLIF", "fusion_groups"]
