"""The quantizer against hand-computed cases: rounding half to even, weight saturation
(clipping), power-of-two and integer steps, per-channel steps, thresholds and biases on the
step, the shift and multiply leaks; formats' checks; calibration is deterministic; the
folded weights come from the compiled model."""
from dataclasses import replace

import numpy as np
import pytest

import snnlite
from snnlite import encoding, nn
from snnlite.event import compile_model
from snnlite.quant import QFormat, quantize, quantize_net
from snnlite.quant.formats import leak_constants, pow2_ceil
from snnlite.quant.ptq import input_step
from snnlite.quant.quantizer import quantize_population

MAX = QFormat(clip="max")


def test_rounding_is_half_to_even():
    """Step 2^-7 (the largest weight 127 * 2^-7 at the top code): w / S = 0.5, 1.5, 2.5,
    -2.5, -3.5 round to 0, 2, 2, -2, -4."""
    S = 2.0 ** -7
    w = np.array([[0.5, 1.5, 2.5, -2.5, -3.5, 127.0]]) * S
    v = quantize_population([w], [1.0], None, 1.0, 0.0, MAX, 1)
    assert v.step.tolist() == [S]
    assert v.weights[0].tolist() == [[0, 2, 2, -2, -4, 127]]
    assert v.v_th.tolist() == [128] and v.v_reset.tolist() == [0]  # 1.0 / 2^-7


def test_steps_pow2_and_int():
    """The largest |w| = 0.3 at the top code 127 needs S >= 0.3 / 127 = 0.00236: a power of
    two rounds up to 2^-8 = 0.0039; the integer rule takes S = 1 / N, N = floor(127 / 0.3) =
    423, and the threshold is exactly 423 units."""
    w = np.array([[0.3, -0.1, 0.05]])
    p = quantize_population([w], [1.0], None, 1.0, 0.0, MAX, 1)
    assert p.step.tolist() == [2.0 ** -8] and p.v_th.tolist() == [256]
    assert p.weights[0].tolist() == [[77, -26, 13]]  # 76.8, -25.6, 12.8
    i = quantize_population([w], [1.0], None, 1.0, 0.0, QFormat(clip="max", scale="int"), 1)
    assert i.step.tolist() == [1.0 / 423] and i.v_th.tolist() == [423]
    assert i.weights[0].tolist() == [[127, -42, 21]]  # 126.9, -42.3, 21.15


def test_per_channel_steps_and_bias_on_the_step():
    w = np.array([[0.3, -0.1], [0.02, 0.01]])
    b = np.array([0.5, -0.04])
    lay = quantize_population([w], [1.0], b, 1.0, 0.0, MAX, 2)
    ch = quantize_population([w], [1.0], b, 1.0, 0.0, QFormat(clip="max", per_channel=True), 2)
    assert lay.step.tolist() == [2.0 ** -8] * 2
    assert ch.step.tolist() == [2.0 ** -8, 2.0 ** -12]  # 0.02 / 127 = 1.6e-4 -> 2^-12
    assert ch.v_th.tolist() == [256, 4096]
    assert ch.bias.tolist() == [128, -164]  # 0.5 * 256; -0.04 * 4096 = -163.84
    assert lay.bias.tolist() == [128, -10]  # -10.24


def test_state_width_bounds_the_step():
    """8-bit states hold thresholds up to 127: S >= 1 / 127 even for tiny weights; a bias
    of 3.0 needs S >= 3 / 127."""
    w = np.array([[0.001, -0.002]])
    f = QFormat(weight_bits=4, state_bits=8, clip="max")
    assert quantize_population([w], [1.0], None, 1.0, 0.0, f, 1).step.tolist() == [2.0 ** -6]
    v = quantize_population([w], [1.0], np.array([3.0]), 1.0, 0.0, f, 1)
    assert v.step.tolist() == [2.0 ** -5] and v.bias.tolist() == [96]


def test_mse_clipping_saturates_outliers():
    """One outlier among small weights at 4 bits: MSE clipping lowers the level, the
    outlier saturates at +-7 and the rest gain resolution; the STE mask marks it."""
    rng = np.random.default_rng(0)
    w = np.concatenate([rng.normal(0, 0.05, 200), [1.0]])[None]
    f = QFormat(weight_bits=4, state_bits=16, scale="int")
    mx = quantize_population([w], [1.0], None, 1.0, 0.0, replace(f, clip="max"), 1)
    ms = quantize_population([w], [1.0], None, 1.0, 0.0, f, 1)
    assert ms.step[0] < mx.step[0]
    assert ms.weights[0][0, -1] == 7 and not ms.in_range[0][0, -1]
    err = [((q.weights[0] * q.step[0] - w) ** 2).sum() for q in (mx, ms)]
    assert err[1] < err[0]
    assert mx.in_range[0].all()


@pytest.mark.parametrize("scale", ["pow2", "int"])
def test_a_threshold_keeps_at_least_one_unit(scale):
    """Weights of 20 at 4 bits would need a step of 20 / 7 > v_th: the step stops at 1
    (v_th = 1 unit) and the weights saturate at 7."""
    w = np.array([[20.0, -0.4, 0.1], [0.5, 0.2, -0.1]])
    v = quantize_population([w], [1.0], None, 1.0, 0.0,
                            QFormat(weight_bits=4, per_channel=True, clip="max", scale=scale),
                            2)
    assert v.step[0] == 1.0 and v.v_th[0] == 1 and v.weights[0][0].tolist() == [7, 0, 0]
    assert not v.in_range[0][0, 0] and v.in_range[0][1].all()


def test_identity_weight_is_one_on_the_step():
    v = quantize_population([np.array([[0.2]]), None], [1.0, 1.0], None, 1.0, 0.0, MAX, 1)
    assert v.weights[1].tolist() == [round(1 / v.step[0])] == [512]


def test_leak_constants():
    assert leak_constants(2.0, QFormat()) == (1, 1)
    assert leak_constants(4.0, QFormat()) == (1, 2)
    with pytest.raises(ValueError, match="needs tau = 2\\^k"):
        leak_constants(3.0, QFormat())
    m = QFormat(leak="multiply")
    assert leak_constants(3.0, m) == (1365, 12)  # round(4096 / 3)
    assert leak_constants(2.0, m) == (2048, 12)
    d = np.arange(-5000, 5000)
    assert np.array_equal((d * 2048) >> 12, d >> 1)  # the two forms agree for tau = 2
    assert (-7) >> 1 == -4  # an arithmetic shift rounds towards minus infinity


def test_pow2_ceil():
    assert pow2_ceil([0.3, 0.25, 1.0, 3.0, 2.0 ** -20 * 1.5]).tolist() == \
        [0.5, 0.25, 1.0, 4.0, 2.0 ** -19]


def test_format_checks():
    with pytest.raises(ValueError, match="weight_bits: expected an integer in"):
        QFormat(weight_bits=1)
    with pytest.raises(ValueError, match="state_bits .* at least weight_bits"):
        QFormat(weight_bits=8, state_bits=6)
    with pytest.raises(ValueError, match="scale: expected one of"):
        QFormat(scale="log")
    d = QFormat(per_channel=True).as_dict()
    assert d["rounding"] == "half_even" and d["acc_bits"] == 32
    assert QFormat.from_dict(d) == QFormat(per_channel=True)
    with pytest.raises(ValueError, match="unknown keys"):
        QFormat.from_dict({"weight_bits": 8, "colour": 1})
    with pytest.raises(ValueError, match="rounding must be"):
        QFormat.from_dict({"weight_bits": 8, "rounding": "half_up"})


def test_quantize_net_uses_the_compiled_folded_weights():
    """The integer weights times the step reproduce the compiler's folded float64 weights
    (BN folded, average pooling folded as / k^2) within half a step."""
    model = snnlite.models.cifarnet_small(seed=0)
    rng = np.random.default_rng(1)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.weight.data[:] = rng.uniform(0.5, 2, m.num_features)
            m.running_var[:] = rng.uniform(0.1, 2, m.num_features)
            m.running_mean[:] = rng.normal(0, 0.1, m.num_features)
    model.eval()
    net = compile_model(model, dtype=np.float64)
    q = quantize_net(net, MAX, "events")
    for p, qp in zip(net.populations, q.populations):
        for a, b in zip(p.projections, qp.projections):
            real = a.weight * a.weight_scale
            S = qp.step.reshape((-1,) + (1,) * (real.ndim - 1))
            assert np.abs(b.weight * S - real).max() <= S.max() / 2 + 1e-15


def test_calibration_is_deterministic(mini_npz):
    from snnlite import data
    train, _ = data.load_mini(mini_npz)
    model = snnlite.models.cifarnet_small(seed=0)
    imgs = train.images[:64].astype(np.float32) / np.float32(255)
    a, ra = quantize(model, QFormat(), imgs, train.mean, train.std, "direct", 2)
    b, rb = quantize(model, QFormat(), imgs, train.mean, train.std, "direct", 2)
    assert ra == rb and a.input_step == b.input_step
    for pa, pb in zip(a.populations, b.populations):
        for qa, qb in zip(pa.projections, pb.projections):
            assert np.array_equal(qa.weight, qb.weight)
    x = encoding.direct(data.normalize(imgs, train.mean, train.std), 2)
    assert a.input_step == input_step(x, QFormat()) == 2.0 ** -5  # 2.1 / 127 -> 2^-5
    assert ra["calibration"]["images"] == 64 and 0 <= ra["agreement"] <= 1
