"""Run an exported integer model with numpy alone: no numba, no h5py, no other snnlite code.

    from snnlite import runtime
    b = runtime.load_bundle("q8.npz")              # snnlite export Q.h5 q8.npz --format bundle
    x = runtime.prepare(b, images)                 # uint8 [B, 3, H, W] -> the model's input
    res = runtime.run(b, x)                        # res.logits [B, K], res.spikes, ...

The arithmetic is the integer engine's (``snnlite.quant.formats``): the same spikes on every
layer and step, the same integer readout and logits, slower (dense numpy arithmetic instead
of event-driven kernels). Import it where numba or LLVM cannot go; the package root it sits
in imports nothing heavy until asked.
"""
from .bundle import BUNDLE_FORMAT, BUNDLE_VERSION, Bundle, from_record, load_bundle
from .execute import RuntimeResult, prepare, run

__all__ = ["BUNDLE_FORMAT", "BUNDLE_VERSION", "Bundle", "RuntimeResult", "from_record",
           "load_bundle", "prepare", "run"]
