"""A spike raster of one sample through every spiking layer: the input events (event
encodings), then each LIF layer of the traced graph, in depth order; each row a neuron that
fired at least once (ordered by first spike), each column a time step, black a spike. The
model runs once, densely and in eval mode (:func:`snnlite.event.dense.dense_forward`, the
event engine's reference)."""
import numpy as np

from ..encoding import model_input
from ..event.dense import dense_forward
from ..nn.graph import trace
from .common import figure

MAX_ROWS = 160  # neurons drawn per layer (evenly spaced among those that fired)


def record_spikes(model, image, encoding, T, mean, std):
    """(input [T, C, H, W], {LIF name: spikes [T, N]}, logits [K]) of raw ``image``
    [C, H, W] in [0, 1]: the model's input and each LIF layer's spikes, flattened."""
    graph = trace(model, image.shape)
    lifs = [n.name for n in graph.of_kind("lif")]
    x = model_input(image[None].astype(np.float32), encoding, T, mean, std)  # [T, 1, C, H, W]
    logits, rec = dense_forward(model, x, names=lifs)
    spikes = {n: np.asarray(rec[n])[:, 0].reshape(T, -1) for n in lifs}
    return np.broadcast_to(x, (T,) + x.shape[1:])[:, 0], spikes, np.asarray(logits)[0]


def _raster(ax, s, title, max_rows, what="neurons"):
    """s [T, N] as a binary image: a row per neuron that fires (at most ``max_rows``, evenly
    spaced among them, ordered by first spike), a column per time step, black = spike."""
    T, N = s.shape
    fired = np.flatnonzero(s.any(0))
    shown = fired[np.linspace(0, len(fired) - 1, min(len(fired), max_rows)).astype(int)] \
        if len(fired) else fired
    rows = s[:, shown].T > 0  # (rows, T)
    rows = rows[np.lexsort((shown, rows.argmax(1)))] if len(shown) else np.zeros((1, T))
    ax.imshow(rows, aspect="auto", cmap="Greys", vmin=0, vmax=1, interpolation="nearest",
              extent=(-0.5, T - 0.5, len(rows) - 0.5, -0.5))
    ax.set_xticks(range(T))
    ax.set_title(f"{title}: {len(fired):,} of {N:,} {what} fired, "
                 f"{s.mean() * 100:.2f}% per step"
                 + (f" (showing {len(shown)})" if len(shown) < len(fired) else ""),
                 fontsize="medium")
    ax.set_ylabel(what[:-1])
    ax.set_yticks([])


def raster_figure(model, image, label, encoding, T, mean, std, label_names=None,
                  name="", max_rows=MAX_ROWS, index=None):
    """Panels "input events" (event encodings only) and "LIF <name>" per spiking layer;
    the suptitle names the sample's label and the model's prediction."""
    x, spikes, logits = record_spikes(model, image, encoding, T, mean, std)
    events = encoding != "direct"
    n = len(spikes) + events
    fig, axes = figure(n, 1, width=8.0, height=1.5 + (1.35 if n <= 8 else 0.9) * n,
                       sharex=True)
    axes = list(axes[:, 0])
    if events:
        _raster(axes.pop(0), x.reshape(T, -1), f"input events ({encoding})", max_rows,
                "inputs")
    for ax, (lif, s) in zip(axes, spikes.items()):
        _raster(ax, s, f"LIF {lif}", max_rows)
    axes = fig.axes
    axes[-1].set_xlabel("time step t")

    def cls(i):
        return label_names[i] if label_names is not None and i < len(label_names) else str(i)
    pred = int(np.argmax(logits))
    which = "test image" if index is None else f"test image {index}"
    fig.suptitle(f"Spike raster of {name or 'the model'} ({encoding} input, T={T})\n"
                 f"{which}: label {cls(int(label))}, predicted {cls(pred)}")
    return fig
