"""CIFAR-style spiking (wide) residual networks, SpikingJelly's spiking ResNet block layout.

``spiking_resnet(depth, width=k)``, depth 6n+2 (or 6n+4 in wide-ResNet counting): a stem
conv3x3(3->16k)+BN+LIF, three stages of n :class:`~snnlite.nn.BasicBlock` with 16k, 32k, 64k
channels (stride 2 at the start of stages 2 and 3, 1x1 conv+BN shortcut where the shape
changes), global average pooling, a linear classifier and the mean over time.

State-dict names: ``conv1.weight, bn1.*, layer{1,2,3}.{i}.conv1.weight, .bn1.*, .conv2.weight,
.bn2.*, .downsample.0.weight, .downsample.1.*, fc.weight, fc.bias``.
"""
import numpy as np

from ..nn import (
    LIF,
    AvgPool2d,
    BasicBlock,
    BatchNorm2d,
    Container,
    Conv2d,
    Flatten,
    Linear,
    Sequential,
    TimeMean,
)


def blocks_per_stage(depth):
    """n for a depth of 6n+2 (ResNet counting: 20 -> 3) or else 6n+4 (wide-ResNet counting,
    which includes the shortcut convolutions: 16 -> 2)."""
    for extra in (2, 4):
        if depth >= 6 + extra and (depth - extra) % 6 == 0:
            return (depth - extra) // 6
    raise ValueError(f"spiking_resnet: depth must be 6n+2 or 6n+4 (n >= 1), got {depth}")


class SpikingResNet(Container):
    def __init__(self, depth=20, width=1, num_classes=10, seed=0, dtype=np.float32, **lif_kw):
        super().__init__()
        n = blocks_per_stage(depth)
        rng = np.random.default_rng(seed)
        widths = [16 * width, 32 * width, 64 * width]
        self.depth, self.width = depth, width
        self.requires_input_grad = False  # the images need no gradient
        self.conv1 = Conv2d(3, widths[0], 3, 1, 1, bias=False, rng=rng, dtype=dtype)
        self.bn1 = BatchNorm2d(widths[0], dtype=dtype)
        self.sn1 = LIF(**lif_kw)
        cin = widths[0]
        for i, w in enumerate(widths):
            blocks = []
            for j in range(n):
                stride = 2 if (i > 0 and j == 0) else 1
                blocks.append(BasicBlock(cin, w, stride, rng=rng, dtype=dtype, **lif_kw))
                cin = w
            setattr(self, f"layer{i + 1}", Sequential(*blocks))
        self.avgpool = AvgPool2d(8)
        self.flatten = Flatten()
        self.fc = Linear(widths[2], num_classes, rng=rng, dtype=dtype)
        self.mean = TimeMean()

    def extra_repr(self):
        return f"depth={self.depth}, width={self.width}"

    def dataflow(self, x):
        for _, m in self.named_children():
            x = m(x)
        return x


def spiking_resnet(depth=20, width=1, num_classes=10, seed=0, dtype=np.float32, **lif_kw):
    return SpikingResNet(depth, width, num_classes, seed, dtype, **lif_kw)


def wrn20_1(num_classes=10, **kw):
    return spiking_resnet(20, 1, num_classes, **kw)


def wrn20_4(num_classes=10, **kw):
    return spiking_resnet(20, 4, num_classes, **kw)


def wrn16_4(num_classes=10, **kw):
    return spiking_resnet(16, 4, num_classes, **kw)
