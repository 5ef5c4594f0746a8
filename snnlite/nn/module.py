"""Module system: parameters, buffers, children, PyTorch-style ``state_dict`` names.

Contract (see the package README): ``forward(x) -> y`` caches what backward needs while
training; ``backward(dy) -> dx`` accumulates into ``p.grad`` of every parameter. Nothing
persists between forward calls: every sequence starts from the resting state.

Time broadcast: an input whose leading (time) axis has stride 0 is the same array at every
step (direct coding). Stateless layers compute such an input once and return a broadcast
output; their backward then returns the gradient summed over time with a leading axis of
1 (the gradient of the un-broadcast array, as autograd sums over an ``expand``).
"""
from collections import OrderedDict

import numpy as np

from .graph import Proxy


class Parameter:
    """A trainable array and its gradient. ``decay=False`` exempts it from weight decay."""

    __slots__ = ("data", "grad", "decay")

    def __init__(self, data, decay=True):
        self.data = np.ascontiguousarray(data)
        self.grad = np.zeros_like(self.data)
        self.decay = decay

    def __repr__(self):
        return f"Parameter(shape={self.data.shape}, dtype={self.data.dtype})"


def is_time_broadcast(x):
    """True if x (T, ...) repeats one array over its leading axis (stride 0, T > 1)."""
    return x.ndim >= 1 and x.shape[0] > 1 and x.strides[0] == 0


def first_step(x):
    """x[:1] for a time-broadcast x (see :func:`is_time_broadcast`), else x; always writable,
    a copy of a read-only view (a broadcast is one), so that the kernels see one array type
    and are compiled once rather than again for read-only arrays."""
    xs = x[:1] if is_time_broadcast(x) else x
    return xs if xs.flags.writeable else xs.copy()


def sum_over_time(dy):
    """(1, ...) gradient of a time-broadcast input from dy (T, ...) or (1, ...)."""
    if dy.shape[0] == 1:
        return dy
    if is_time_broadcast(dy):
        return dy[:1] * dy.shape[0]
    return dy.sum(0, keepdims=True)


class Module:
    """Base class. Subclasses set Parameters, child Modules and buffers as attributes.

    A layer declares ``kind`` (its node kind in the traced graph, see :mod:`snnlite.nn.graph`)
    and ``output_shape(in_shape)`` (per-sample shapes, without T and B); a container
    (:class:`~snnlite.nn.containers.Container`) declares its dataflow instead.
    """

    kind = None

    training = True
    requires_input_grad = True
    """If False, backward skips the input gradient and returns None (first layers)."""

    def __init__(self):
        self._buffer_names = []

    def register_buffer(self, name, value):
        self._buffer_names.append(name)
        setattr(self, name, value)

    # ------------------------------------------------------------------ tree walking
    def named_children(self):
        return [(k, v) for k, v in vars(self).items() if isinstance(v, Module)]

    def named_parameters(self, prefix=""):
        out = [(prefix + k, v) for k, v in vars(self).items() if isinstance(v, Parameter)]
        for name, child in self.named_children():
            out += child.named_parameters(f"{prefix}{name}.")
        return out

    def parameters(self):
        return [p for _, p in self.named_parameters()]

    def modules(self):
        yield self
        for _, child in self.named_children():
            yield from child.modules()

    def named_modules(self, prefix=""):
        """(dotted name, module) for this module (named ``prefix``) and every descendant."""
        yield prefix, self
        for name, child in self.named_children():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def state_dict(self, prefix=""):
        """Ordered {dotted name: array copy}: own parameters, own buffers, then children."""
        d = OrderedDict()
        for k, v in vars(self).items():
            if isinstance(v, Parameter):
                d[prefix + k] = v.data.copy()
        for k in self._buffer_names:
            d[prefix + k] = np.array(getattr(self, k), copy=True)
        for name, child in self.named_children():
            d.update(child.state_dict(f"{prefix}{name}."))
        return d

    def load_state_dict(self, state, strict=True):
        """Copy arrays from ``state`` into this module, checking names and shapes.

        With ``strict`` every key must match; mismatched shapes always raise.
        Values are cast to the dtype of the array they replace.
        """
        own = self._slots()
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        if strict and (missing or unexpected):
            raise ValueError(f"load_state_dict: missing keys {missing}, "
                             f"unexpected keys {unexpected}")
        for k, (owner, attr) in own.items():
            if k not in state:
                continue
            value = np.asarray(state[k])
            cur = owner.__dict__[attr]
            cur_arr = cur.data if isinstance(cur, Parameter) else np.asarray(cur)
            if value.shape != cur_arr.shape:
                raise ValueError(f"load_state_dict: {k}: expected shape {cur_arr.shape}, "
                                 f"got {value.shape}")
            if isinstance(cur, Parameter):
                cur.data = np.ascontiguousarray(value, cur.data.dtype).copy()
                cur.grad = np.zeros_like(cur.data)
            else:
                setattr(owner, attr, np.array(value, cur_arr.dtype))

    def _slots(self, prefix=""):
        """{dotted name: (owning module, attribute)} for parameters and buffers."""
        out = {}
        for k, v in vars(self).items():
            if isinstance(v, Parameter):
                out[prefix + k] = (self, k)
        for k in self._buffer_names:
            out[prefix + k] = (self, k)
        for name, child in self.named_children():
            out.update(child._slots(f"{prefix}{name}."))
        return out

    # ------------------------------------------------------------------ modes
    def train(self, mode=True):
        for m in self.modules():
            m.training = mode
        return self

    def eval(self):
        return self.train(False)

    def zero_grad(self):
        for p in self.parameters():
            p.grad[...] = 0

    def astype(self, dtype):
        """Convert parameters and float buffers to ``dtype`` (float32 or float64)."""
        dtype = np.dtype(dtype)
        if dtype.type not in (np.float32, np.float64):
            raise TypeError(f"astype: expected float32 or float64, got {dtype}")
        for m in self.modules():
            for k, v in vars(m).items():
                if isinstance(v, Parameter):
                    v.data = v.data.astype(dtype)
                    v.grad = v.grad.astype(dtype)
            for k in m._buffer_names:
                b = getattr(m, k)
                if np.issubdtype(b.dtype, np.floating):
                    setattr(m, k, b.astype(dtype))
        return self

    @property
    def dtype(self):
        ps = self.parameters()
        return ps[0].data.dtype if ps else np.dtype(np.float32)

    # ------------------------------------------------------------------ calling
    def output_shape(self, in_shape):
        """Per-sample output shape for a per-sample input shape; None if unknown."""
        return None

    def forward(self, x):
        raise NotImplementedError

    def backward(self, dy):
        raise NotImplementedError

    def __call__(self, x):
        if isinstance(x, Proxy):  # tracing: record the call instead of computing it
            return x.tracer.call(self, x)
        return self.forward(x)

    def extra_repr(self):
        return ""

    def __repr__(self):
        children = self.named_children()
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not children:
            return head + ")"
        lines = [head]
        for name, child in children:
            body = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {body}")
        return "\n".join(lines) + "\n)"
