"""Model builders. ``build(name, num_classes)`` makes any of ``MODELS`` by name."""
from .cifarnet import cifarnet_small
from .resnet import SpikingResNet, spiking_resnet, wrn16_4, wrn20_1, wrn20_4

MODELS = {"cifarnet_small": cifarnet_small, "wrn20_1": wrn20_1, "wrn20_4": wrn20_4,
          "wrn16_4": wrn16_4}


def build(name, num_classes=10, **kw):
    """Build the model called ``name`` (one of ``MODELS``)."""
    if name not in MODELS:
        raise ValueError(f"model: expected one of {sorted(MODELS)}, got {name!r}")
    return MODELS[name](num_classes=num_classes, **kw)


__all__ = ["MODELS", "build", "cifarnet_small", "SpikingResNet", "spiking_resnet", "wrn16_4",
           "wrn20_1", "wrn20_4"]
