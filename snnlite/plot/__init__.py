"""Figures of runs and audits (``snnlite plot``), drawn with matplotlib, an optional
dependency (``pip install -e ".[plot]"``): importing this package does not import it;
drawing a figure does, and says how to install it when it is missing.

One module per kind of figure, each a function returning a ``matplotlib.figure.Figure``
(made without pyplot, so nothing global changes):

    curves     curves_figure(runs)              loss, accuracy, lr per epoch; runs overlaid
    firing     firing_figure(runs, audits)      firing rate per spiking layer, per epoch/step
    energy     energy_figure(audits)            energy estimate per layer and operation kind
    raster     raster_figure(model, image, ...)  spikes of one sample through every layer
    kl-gap     kl_gap_figure(runs)              transfer runs: KL and accuracy gap per epoch
    depth      depth_figure(stats)              per spiking layer: firing and pre-activation
                                                under direct and TTFS input, and their ratio

Runs, audits and depth statistics are read by :mod:`.sources`; :func:`save` writes PNG or
SVG atomically.
"""
from .common import FORMATS, HINT, save
from .curves import curves_figure
from .depth import depth_figure
from .energy import energy_figure
from .firing import firing_figure
from .raster import raster_figure, record_spikes
from .sources import (
    Audit,
    DepthStats,
    Run,
    Sources,
    gather,
    read_audit,
    read_depth_stats,
    read_json,
    read_run,
)
from .transfer import kl_gap_figure

KINDS = ("curves", "firing", "energy", "raster", "kl-gap", "depth")

__all__ = ["FORMATS", "HINT", "KINDS", "Audit", "DepthStats", "Run", "Sources",
           "curves_figure", "depth_figure", "energy_figure", "firing_figure", "gather",
           "kl_gap_figure", "raster_figure", "read_audit", "read_depth_stats", "read_json",
           "read_run", "record_spikes", "save"]
