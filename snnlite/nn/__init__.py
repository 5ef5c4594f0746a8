"""Layers and neurons with a PyTorch/SpikingJelly-like interface, on time-major arrays."""
from . import functional
from .blocks import BasicBlock
from .containers import Container, GraphModule, Sequential
from .elementwise import Scale, Threshold
from .fold import fold_bn
from .graph import Graph, Node, trace
from .layers import (
    AvgPool2d,
    BatchNorm1d,
    BatchNorm2d,
    Conv2d,
    Flatten,
    Linear,
    MaxPool2d,
    SumPool2d,
    TimeFolded,
    TimeMean,
)
from .module import Module, Parameter, is_time_broadcast
from .neuron import IF, LIF, CubaLIF
from .recurrent import Recurrent

__all__ = ["functional", "BasicBlock", "AvgPool2d", "BatchNorm1d", "BatchNorm2d", "Container",
           "Conv2d", "Flatten", "Graph", "GraphModule", "Linear", "MaxPool2d", "Node",
           "SumPool2d", "TimeFolded", "TimeMean", "Module", "Parameter", "Sequential",
           "fold_bn", "is_time_broadcast", "IF", "LIF", "CubaLIF", "Recurrent", "Scale",
           "Threshold", "trace"]
