"""Stateless layers on time-major input ``[T, B, ...]``: time is folded into the batch.

Parameter names, shapes and initialisation follow PyTorch (``Conv2d.weight`` is
``[out, in, kh, kw]``, uniform in +-1/sqrt(fan_in)), so ``state_dict`` keys line up with a
SpikingJelly model of the same structure.
"""
import math

import numpy as np

from . import functional as F
from .module import Module, Parameter, first_step, is_time_broadcast, sum_over_time


def _uniform(rng, bound, shape, dtype):
    rng = np.random.default_rng() if rng is None else rng
    return rng.uniform(-bound, bound, size=shape).astype(dtype)


class TimeFolded(Module):
    """Base for layers that treat every time step alike: ``_forward`` and ``_backward`` see
    ``(N, ...)`` with N = T*B, or N = B once for a time-broadcast input."""

    in_rank = None  # rank of the input including T and B

    def _check_rank(self, in_shape):
        if self.in_rank is not None and len(in_shape) + 2 != self.in_rank:
            raise ValueError(f"expected input of rank {self.in_rank} [T, B, ...], got "
                             f"per-sample shape {tuple(in_shape)}")

    def forward(self, x):
        F.check_float("x", x)
        if self.in_rank is not None and x.ndim != self.in_rank:
            raise ValueError(f"{type(self).__name__}: expected input of rank {self.in_rank} "
                             f"[T, B, ...], got shape {x.shape}")
        bc = is_time_broadcast(x)
        xs = first_step(x)
        y = self._forward(xs.reshape((-1,) + xs.shape[2:]))
        y = y.reshape(xs.shape[:2] + y.shape[1:])
        self._bc, self._in_shape = bc, xs.shape
        return np.broadcast_to(y, x.shape[:1] + y.shape[1:]) if bc else y

    def backward(self, dy):
        if not hasattr(self, "_bc"):
            raise RuntimeError(f"{type(self).__name__}.backward: call forward in training "
                               "mode first")
        if self._bc:
            dy = sum_over_time(dy)
        dy = np.ascontiguousarray(dy)
        dx = self._backward(dy.reshape((-1,) + dy.shape[2:]))
        return None if dx is None else dx.reshape(self._in_shape)

    def _forward(self, x):
        raise NotImplementedError

    def _backward(self, dy):
        raise NotImplementedError


class Conv2d(TimeFolded):
    """2-D convolution, zero padding. Inputs whose fraction of nonzeros (per image) is below
    ``sparse_below`` run event-driven (spikes); the rest run im2col + GEMM. With ``winograd``
    the input gradient of 3x3 stride-1 padding-1 convolutions uses Winograd F(2x2, 3x3)."""

    kind = "conv"
    in_rank = 5
    sparse_below = 0.2
    winograd = True

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 bias=True, rng=None, dtype=np.float32):
        super().__init__()
        k = kernel_size
        if not isinstance(k, int):
            if len(set(k)) != 1:
                raise ValueError(f"Conv2d: only square kernels are supported, got {k}")
            k = k[0]
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = k, stride, padding
        bound = 1.0 / math.sqrt(in_channels * k * k)
        self.weight = Parameter(_uniform(rng, bound, (out_channels, in_channels, k, k), dtype))
        self.bias = Parameter(_uniform(rng, bound, (out_channels,), dtype), decay=False) \
            if bias else None
        self._ws = F.Workspace()

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, bias={self.bias is not None}")

    def output_shape(self, in_shape):
        self._check_rank(in_shape)
        C, H, W = in_shape
        if C != self.in_channels:
            raise ValueError(f"expected {self.in_channels} input channels, got {C} "
                             f"(per-sample shape {tuple(in_shape)})")
        k, s, p = self.kernel_size, self.stride, self.padding
        Ho, Wo = (H + 2 * p - k) // s + 1, (W + 2 * p - k) // s + 1
        if Ho < 1 or Wo < 1:
            raise ValueError(f"spatial size {(H, W)} too small for kernel {(k, k)}, "
                             f"padding {p}, stride {s}")
        return self.out_channels, Ho, Wo

    def _forward(self, x):
        b = None if self.bias is None else self.bias.data
        y = F.conv2d_forward(x, self.weight.data, b, self.stride, self.padding,
                             self.sparse_below, self._ws)
        self._x = x if self.training else None
        return y

    def _backward(self, dy):
        if self._x is None:
            raise RuntimeError("Conv2d.backward: call forward in training mode first")
        dx, dw = F.conv2d_backward(dy, self._x, self.weight.data, self.stride, self.padding,
                                   self.requires_input_grad, True, self.sparse_below, self._ws,
                                   self.winograd)
        self.weight.grad += dw
        if self.bias is not None:
            self.bias.grad += dy.sum((0, 2, 3))
        self._x = None
        return dx


class Linear(TimeFolded):
    """y = x @ weight.T + bias on the last axis of ``[T, B, in_features]``."""

    kind = "linear"
    in_rank = 3

    def __init__(self, in_features, out_features, bias=True, rng=None, dtype=np.float32):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        bound = 1.0 / math.sqrt(in_features)
        self.weight = Parameter(_uniform(rng, bound, (out_features, in_features), dtype))
        self.bias = Parameter(_uniform(rng, bound, (out_features,), dtype), decay=False) \
            if bias else None

    def extra_repr(self):
        return f"{self.in_features}, {self.out_features}, bias={self.bias is not None}"

    def output_shape(self, in_shape):
        self._check_rank(in_shape)
        if in_shape[0] != self.in_features:
            raise ValueError(f"expected {self.in_features} input features, got "
                             f"{in_shape[0]}")
        return (self.out_features,)

    def _forward(self, x):
        b = None if self.bias is None else self.bias.data
        self._x = x if self.training else None
        return F.linear_forward(x, self.weight.data, b)

    def _backward(self, dy):
        if self._x is None:
            raise RuntimeError("Linear.backward: call forward in training mode first")
        dx, dw, db = F.linear_backward(dy, self._x, self.weight.data, self.requires_input_grad)
        self.weight.grad += dw
        if self.bias is not None:
            self.bias.grad += db
        self._x = None
        return dx


class _BatchNorm(TimeFolded):
    """Batch norm over time: statistics over T*B (and H*W) per channel in training (biased
    variance to normalise, unbiased for the running variance), running statistics in eval."""

    kind = "bn"

    def __init__(self, num_features, eps=1e-5, momentum=0.1, dtype=np.float32):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.weight = Parameter(np.ones(num_features, dtype), decay=False)
        self.bias = Parameter(np.zeros(num_features, dtype), decay=False)
        self.register_buffer("running_mean", np.zeros(num_features, dtype))
        self.register_buffer("running_var", np.ones(num_features, dtype))
        self.register_buffer("num_batches_tracked", np.array(0, np.int64))

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"

    def output_shape(self, in_shape):
        self._check_rank(in_shape)
        if in_shape[0] != self.num_features:
            raise ValueError(f"expected {self.num_features} channels, got per-sample shape "
                             f"{tuple(in_shape)}")
        return tuple(in_shape)

    def _ncl(self, x):
        return x.reshape(x.shape[0], x.shape[1], -1)

    def forward(self, x):
        y = super().forward(x)
        if self.training:  # the running variance counts every time step, as autograd would
            self.update_running_stats(self._mean, self._var,
                                      self._count * (x.shape[0] if self._bc else 1))
        return y

    def update_running_stats(self, mean, var, n):
        """Momentum update from batch ``mean`` and biased ``var`` over ``n`` values."""
        m = self.momentum
        unbiased = var * (n / max(n - 1, 1))
        dt = self.running_mean.dtype
        self.running_mean = ((1 - m) * self.running_mean + m * mean).astype(dt)
        self.running_var = ((1 - m) * self.running_var + m * unbiased).astype(dt)
        self.num_batches_tracked = self.num_batches_tracked + 1

    def _forward(self, x):
        if x.shape[1] != self.num_features:
            raise ValueError(f"{type(self).__name__}: expected {self.num_features} channels, "
                             f"got shape {x.shape}")
        xc = self._ncl(x)
        if self.training:
            y, self._mean, self._var, self._rstd = F.batch_norm_train(
                xc, self.weight.data, self.bias.data, self.eps)
            self._count = xc.shape[0] * xc.shape[2]
            self._x = xc
        else:
            y = F.batch_norm_eval(xc, self.weight.data, self.bias.data,
                                  self.running_mean, self.running_var, self.eps)
            self._x = None
        return y.reshape(x.shape)

    def _backward(self, dy):
        if self._x is None:
            raise RuntimeError(f"{type(self).__name__}.backward: call forward in training "
                               "mode first")
        dx, dg, db = F.batch_norm_train_backward(self._ncl(dy), self._x, self.weight.data,
                                                 self._mean, self._rstd)
        self.weight.grad += dg.astype(self.weight.grad.dtype)
        self.bias.grad += db.astype(self.bias.grad.dtype)
        self._x = None
        return dx.reshape(dy.shape)


class BatchNorm2d(_BatchNorm):
    in_rank = 5


class BatchNorm1d(_BatchNorm):
    in_rank = 3


class AvgPool2d(TimeFolded):
    """Average pooling with kernel = stride = k, no padding."""

    kind = "avgpool"
    in_rank = 5

    def __init__(self, kernel_size):
        super().__init__()
        self.kernel_size = kernel_size

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}"

    def output_shape(self, in_shape):
        self._check_rank(in_shape)
        C, H, W = in_shape
        k = self.kernel_size
        if H % k or W % k:
            raise ValueError(f"spatial size {(H, W)} is not divisible by pooling size {k}")
        return C, H // k, W // k

    def _forward(self, x):
        return F.avg_pool_forward(x, self.kernel_size)

    def _backward(self, dy):
        return F.avg_pool_backward(dy, self.kernel_size)


class MaxPool2d(AvgPool2d):
    """Max pooling with kernel = stride = k; gradient to the first maximum of a window."""

    kind = "maxpool"

    def _forward(self, x):
        y, self._idx = F.max_pool_forward(x, self.kernel_size)
        return y

    def _backward(self, dy):
        return F.max_pool_backward(dy, self._idx, self.kernel_size)


class SumPool2d(AvgPool2d):
    """Sum pooling with kernel = stride = k (NIR's ``SumPool2d``): average pooling * k^2."""

    kind = "sumpool"

    def _forward(self, x):
        return F.avg_pool_forward(x, self.kernel_size) * (self.kernel_size ** 2)

    def _backward(self, dy):
        return F.avg_pool_backward(dy * (self.kernel_size ** 2), self.kernel_size)


class Flatten(TimeFolded):
    """``[T, B, C, H, W] -> [T, B, C*H*W]`` in C, H, W order (PyTorch's)."""

    kind = "flatten"

    def output_shape(self, in_shape):
        n = 1
        for d in in_shape:
            n *= d
        return (n,)

    def _forward(self, x):
        return x.reshape(x.shape[0], -1)

    def _backward(self, dy):
        return dy.reshape((dy.shape[0],) + self._in_shape[2:])


class TimeMean(Module):
    """``[T, B, ...] -> [B, ...]``: the mean over time (logits of a spiking classifier)."""

    kind = "mean"

    def output_shape(self, in_shape):
        return tuple(in_shape)

    def forward(self, x):
        F.check_float("x", x)
        self._T = x.shape[0]
        return x[0].copy() if is_time_broadcast(x) else x.mean(0)

    def backward(self, dy):
        if not hasattr(self, "_T"):
            raise RuntimeError("TimeMean.backward: call forward first")
        return np.broadcast_to(dy / self._T, (self._T,) + dy.shape)
