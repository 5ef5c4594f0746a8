"""Residual blocks."""
import numpy as np

from .layers import BatchNorm2d, Conv2d
from .module import Module, Sequential
from .neuron import LIF


class BasicBlock(Module):
    """SpikingJelly's spiking ResNet basic block:

        out = sn2(bn2(conv2(sn1(bn1(conv1(x))))) + shortcut(x))

    with the second neuron after the residual add; ``shortcut`` is the identity, or
    ``downsample = Sequential(conv1x1(stride), BatchNorm2d)`` when the shape changes.
    State-dict names: ``conv1, bn1, sn1, conv2, bn2, downsample.0, downsample.1, sn2``.
    """

    def __init__(self, in_planes, planes, stride=1, rng=None, dtype=np.float32, **lif_kw):
        super().__init__()
        self.conv1 = Conv2d(in_planes, planes, 3, stride, 1, bias=False, rng=rng, dtype=dtype)
        self.bn1 = BatchNorm2d(planes, dtype=dtype)
        self.sn1 = LIF(**lif_kw)
        self.conv2 = Conv2d(planes, planes, 3, 1, 1, bias=False, rng=rng, dtype=dtype)
        self.bn2 = BatchNorm2d(planes, dtype=dtype)
        self.downsample = None
        if stride != 1 or in_planes != planes:
            self.downsample = Sequential(
                Conv2d(in_planes, planes, 1, stride, 0, bias=False, rng=rng, dtype=dtype),
                BatchNorm2d(planes, dtype=dtype))
        self.sn2 = LIF(**lif_kw)

    fuse = True
    """Run bn1 -> sn1 and bn2 (+ shortcut) -> sn2 fused (see :mod:`snnlite.nn.fusion`)."""

    def forward(self, x):
        from .fusion import FusedBNLIF
        short = x if self.downsample is None else self.downsample.forward(x)
        if not self.fuse:
            out = self.bn1.forward(self.conv1.forward(x))
            out = self.bn2.forward(self.conv2.forward(self.sn1.forward(out)))
            self._units = None
            return self.sn2.forward(out + short)
        self._units = (FusedBNLIF(self.bn1, self.sn1), FusedBNLIF(self.bn2, self.sn2))
        out = self._units[0].forward(self.conv1.forward(x))
        return self._units[1].forward(self.conv2.forward(out), residual=short)

    def backward(self, dy):
        if self._units is None:
            g = self.sn2.backward(dy)
            dx = self.conv1.backward(self.bn1.backward(self.sn1.backward(
                self.conv2.backward(self.bn2.backward(g)))))
        else:
            f1, f2 = self._units
            dx = self.conv1.backward(f1.backward(self.conv2.backward(f2.backward(dy))))
            g = f2.dresidual
        if self.downsample is None:
            return dx + g
        return dx + self.downsample.backward(g)
