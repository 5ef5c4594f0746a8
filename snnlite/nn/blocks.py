"""Residual blocks."""
import numpy as np

from .containers import Container, Sequential
from .layers import BatchNorm2d, Conv2d
from .neuron import LIF


class BasicBlock(Container):
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

    def dataflow(self, x):
        out = self.bn2(self.conv2(self.sn1(self.bn1(self.conv1(x)))))
        short = x if self.downsample is None else self.downsample(x)
        return self.sn2(out + short)
