"""Integer models: formats, post-training quantization, quantization-aware training.

    from snnlite.quant import QFormat, quantize
    qnet, report = quantize(model, QFormat(weight_bits=8, state_bits=16), calib_images,
                            mean, std, encoding="direct", T=4)
    res = snnlite.event.qengine.run(qnet, x)     # integer arithmetic, exact counts

The arithmetic (rounding, saturation, leak, accumulator width) is stated in
:mod:`snnlite.quant.formats`; a quantized checkpoint is written by
:func:`snnlite.quant.checkpoint.save_quantized`; ``snnlite train --quantize BITS`` finetunes
through fake quantization (:mod:`snnlite.quant.qat`).
"""
from .formats import QFormat
from .ptq import CALIBRATION_IMAGES, calibrate, quantize, quantize_net
from .qnet import QNet, QPopulation

__all__ = ["CALIBRATION_IMAGES", "QFormat", "QNet", "QPopulation", "calibrate", "quantize",
           "quantize_net"]
