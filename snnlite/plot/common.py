"""What every figure shares: matplotlib, imported only when a figure is drawn (with a
one-line hint when it is missing), a figure factory that leaves matplotlib's global state
alone (no pyplot, no backend switch), atomic saving to PNG or SVG, and the colours."""
import os
from pathlib import Path

from ..io.checkpoint import atomic_write

HINT = ("matplotlib is not installed; plotting needs it: pip install -e \".[plot]\" "
        "(in a checkout) or pip install matplotlib")
FORMATS = ("png", "svg")
DPI = 110


def matplotlib():
    """The ``matplotlib`` module, or ``ModuleNotFoundError`` carrying :data:`HINT`."""
    try:
        import matplotlib as mpl
        from matplotlib.figure import Figure  # noqa: F401  (fails early if incomplete)
    except ImportError:
        raise ModuleNotFoundError(HINT, name="matplotlib") from None
    return mpl


def figure(nrows=1, ncols=1, width=9.0, height=3.6, **kw):
    """(Figure, axes array) with constrained layout, made without pyplot (so without a
    GUI backend or any global figure registry). ``kw`` goes to ``Figure.subplots``."""
    matplotlib()
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, **kw)
    return fig, axes


def save(fig, path):
    """Write ``fig`` to ``path`` (PNG or SVG by its suffix) atomically; returns the path."""
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower()
    if fmt not in FORMATS:
        raise ValueError(f"{path}: the figure format must be one of {', '.join(FORMATS)}")
    meta = {"Software": None} if fmt == "png" else {"Date": None}  # reproducible bytes

    def write(tmp):
        with open(tmp, "wb") as f:
            fig.savefig(f, format=fmt, dpi=DPI, metadata=meta)
    atomic_write(path, write)
    return path


def colours(n):
    """``n`` distinguishable colours (matplotlib's tab10, then tab20)."""
    mpl = matplotlib()
    cmap = mpl.colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def tidy(ax, title, xlabel, ylabel):
    """Title, axis labels and a light grid on ``ax``."""
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)


def short(name, width=28):
    """``name`` cut to ``width`` characters for a legend or tick label."""
    name = os.fspath(name)
    return name if len(name) <= width else name[:width - 1] + "…"


def integer_ticks(axis):
    """Whole-number ticks only (epochs, time steps)."""
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True))
