"""Layers and neurons with a PyTorch/SpikingJelly-like interface, on time-major arrays."""
from . import functional
from .blocks import BasicBlock
from .layers import (
    AvgPool2d,
    BatchNorm1d,
    BatchNorm2d,
    Conv2d,
    Flatten,
    Linear,
    MaxPool2d,
    TimeFolded,
    TimeMean,
)
from .module import Module, Parameter, Sequential, is_time_broadcast
from .neuron import LIF

__all__ = ["functional", "BasicBlock", "AvgPool2d", "BatchNorm1d", "BatchNorm2d", "Conv2d",
           "Flatten", "Linear", "MaxPool2d", "TimeFolded", "TimeMean", "Module", "Parameter",
           "Sequential", "is_time_broadcast", "LIF"]
