"""``cifarnet_small``: a four-convolution spiking CNN for 32x32 images."""
import numpy as np

from ..nn import LIF, AvgPool2d, BatchNorm2d, Conv2d, Flatten, Linear, Sequential, TimeMean


def cifarnet_small(num_classes=10, seed=0, dtype=np.float32, **lif_kw):
    """conv3x3(3->32)+BN+LIF, conv3x3(32->64)+BN+LIF, avgpool2, conv3x3(64->128)+BN+LIF,
    avgpool2, conv3x3(128->128)+BN+LIF, avgpool2, flatten, linear(2048->num_classes),
    then the mean over time. Input ``[T, B, 3, 32, 32]``, output logits ``[B, classes]``.

    Convolutions have padding 1 and no bias. ``state_dict()`` names are those of the same
    PyTorch ``nn.Sequential``: ``0.weight, 1.weight, 1.bias, 1.running_mean, ...,
    16.weight, 16.bias`` (index 17, the time mean, has no parameters).
    """
    rng = np.random.default_rng(seed)

    def cbl(cin, cout):
        return [Conv2d(cin, cout, 3, 1, 1, bias=False, rng=rng, dtype=dtype),
                BatchNorm2d(cout, dtype=dtype), LIF(**lif_kw)]

    net = Sequential(*cbl(3, 32), *cbl(32, 64), AvgPool2d(2), *cbl(64, 128), AvgPool2d(2),
                     *cbl(128, 128), AvgPool2d(2), Flatten(),
                     Linear(2048, num_classes, rng=rng, dtype=dtype), TimeMean())
    net.requires_input_grad = False
    return net
