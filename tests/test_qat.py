"""Quantization-aware training: the gradient path (straight-through estimator and the chain
rule of BN folding) against finite differences of the fake-quant forward with rounding
replaced by the identity (where the STE is the exact gradient); clipped weights get no
gradient; the fake-quant view's wiring equals the float model's forward on weights already
on the grid; its integers are exactly what post-training quantization makes of the same
weights; the wrapper keeps the model's names and graph."""
import gradcheck
import numpy as np
import pytest
from test_qengine import if_sumpool_net, lively, residual_net, strided_net

import snnlite
from snnlite import encoding, nn
from snnlite.event import compile_model
from snnlite.nn.graph import trace
from snnlite.quant import QFormat, quantize_net
from snnlite.quant import qat as qat_module
from snnlite.quant.qat import QATModel
from snnlite.quant.quantizer import quantize_population

MAX = QFormat(clip="max")


def _unrounded(weights, units, bias, v_th, v_reset, fmt, channels):
    """quantize_population with the rounding of weights and bias replaced by the identity
    (the same steps and clipping): the forward the straight-through estimator differentiates."""
    vals = quantize_population(weights, units, bias, v_th, v_reset, fmt, channels)
    S = vals.step
    for j, (w, u) in enumerate(zip(weights, units)):
        if w is not None:
            s = S.reshape((-1,) + (1,) * (w.ndim - 1))
            vals.weights[j] = np.clip(w * u / s, -fmt.w_max, fmt.w_max)
    if bias is not None:
        vals.bias = bias / S
    return vals


def _readout_nets():
    """Differentiable nets (no LIF): conv + BN2d and flatten + linear + BN1d into the
    readout, input (2, 5, 5)."""
    r = np.random.default_rng(4)
    d = np.float64
    conv = nn.Sequential(nn.Conv2d(2, 3, 3, 1, 1, bias=True, rng=r, dtype=d),
                         nn.BatchNorm2d(3, dtype=d), nn.TimeMean())
    lin = nn.Sequential(nn.Flatten(), nn.Linear(50, 4, bias=True, rng=r, dtype=d),
                        nn.BatchNorm1d(4, dtype=d), nn.TimeMean())
    return {"conv": conv, "linear": lin}


@pytest.mark.parametrize("name", ["conv", "linear"])
@pytest.mark.parametrize("fmt", [MAX, QFormat(clip="max", per_channel=True, scale="int")])
def test_ste_gradient_matches_finite_differences(monkeypatch, name, fmt):
    """With rounding replaced by the identity the fake-quant forward is differentiable and
    its gradient is what the STE computes: check it in float64 along random directions, for
    the weight and bias of the synaptic layer and gamma and beta of the BN folded into it."""
    model = lively(_readout_nets()[name])
    rng = np.random.default_rng(0)
    x = encoding.direct(rng.random((3, 2, 5, 5)) * 2 - 1, 2)
    qat = QATModel(model, fmt, (2, 5, 5), "dense", 1.0 / 64)
    monkeypatch.setattr(qat_module, "quantize_population", _unrounded)  # the STE's model
    qat.train()
    out = qat.forward(x)
    c = rng.standard_normal(out.shape)
    model.zero_grad()
    qat.backward(c)
    params = [p for _, p in model.named_parameters()]
    grads = [p.grad.copy() for p in params]
    assert all(np.abs(g).max() > 0 for g in grads)

    def loss(*values):
        old = [p.data for p in params]
        for p, v in zip(params, values):
            p.data = v
        try:
            return float((qat.forward(x) * c).sum())
        finally:
            for p, v in zip(params, old):
                p.data = v

    gradcheck.directional_check(loss, [p.data.copy() for p in params], grads, rng,
                                names=[n for n, _ in model.named_parameters()])


def test_clipped_weights_get_no_gradient():
    model = lively(_readout_nets()["linear"])
    w = model[1].weight.data
    w[0, 0] = 5 * np.abs(w).max()  # an outlier that MSE clipping saturates at 4 bits
    qat = QATModel(model, QFormat(weight_bits=4, state_bits=16), (2, 5, 5), "events")
    x = np.ones((2, 3, 2, 5, 5))  # every input spikes: every weight matters
    qat.train()
    out = qat.forward(x)
    model.zero_grad()
    qat.backward(np.ones_like(out))
    (p, _, vals), = qat.quantized()
    assert not vals.in_range[0][0, 0] and vals.in_range[0].mean() > 0.9
    g = model[1].weight.grad
    assert g[0, 0] == 0 and np.count_nonzero(g) == vals.in_range[0].sum()


def _on_grid(model, shape, fmt, kind, step=None):
    """Set the model's weights to their own quantized values, so that fake quantization
    changes nothing, with every product and sum exact in float64 on both paths (BN with
    eps 0, unit variance, zero mean and a power-of-two gain: its folding is exact too, and
    a membrane tying with the threshold ties on both paths)."""
    rng = np.random.default_rng(7)
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            m.eps = 0.0
            m.running_var[:] = 1.0
            m.running_mean[:] = 0.0
            m.weight.data[:] = rng.choice([1.0, 2.0], m.num_features)
    qat = QATModel(model, fmt, shape, kind, step)
    for p, members, vals in qat.quantized():
        first = True
        for mb, wi in zip(members, vals.weights):
            if mb.module is None:
                continue
            m, bn = mb.module, mb.bn
            S = vals.step.reshape((-1,) + (1,) * (wi.ndim - 1))
            target = wi * S / (mb.proj.weight_scale * mb.unit)  # the folded weight wanted
            b = vals.bias * vals.step if first and vals.bias is not None else 0.0
            g = 1.0 if bn is None else bn.weight.data
            m.weight.data[...] = target / np.reshape(g, (-1,) + (1,) * (wi.ndim - 1))
            if m.bias is not None:
                m.bias.data[...] = 0.0
            if bn is not None:
                bn.bias.data[...] = b
            elif m.bias is not None:
                m.bias.data[...] = b
            first = False
    return model


@pytest.mark.parametrize("build,shape", [(strided_net, (2, 13, 13)), (residual_net, (2, 12, 12)),
                                         (if_sumpool_net, (2, 8, 8)),
                                         (lambda: snnlite.models.cifarnet_small(seed=0),
                                          (3, 32, 32))])
@pytest.mark.parametrize("kind", ["events", "dense"])
def test_view_equals_the_float_model_on_the_grid(build, shape, kind):
    """Weights already on the grid and input on its codes: the folded fake-quant view
    computes what the float model computes (BN with its running statistics)."""
    step = 1.0 / 32
    model = _on_grid(lively(build()), shape, MAX, kind, step)
    rng = np.random.default_rng(2)
    img = rng.random((2,) + shape)
    x = encoding.ttfs(img, 3) if kind == "events" else \
        encoding.direct(np.round((img * 4 - 2) / step) * step, 3)
    qat = QATModel(model, MAX, shape, kind, step).eval()
    np.testing.assert_allclose(qat.forward(x), model.eval().forward(x), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("build,shape", [(residual_net, (2, 12, 12)),
                                         (lambda: snnlite.models.cifarnet_small(seed=0),
                                          (3, 32, 32))])
@pytest.mark.parametrize("fmt", [QFormat(), QFormat(weight_bits=4, per_channel=True,
                                                    scale="int")])
def test_fake_quant_integers_are_the_ptq_integers(build, shape, fmt):
    model = lively(build())
    step = 2.0 ** -5
    qat = QATModel(model, fmt, shape, "dense", step)
    q = quantize_net(compile_model(model, shape, dtype=np.float64), fmt, "dense", step)
    groups = qat.quantized()
    lifs = [p for p in q.populations if p.kind != "maxpool"]
    assert len(groups) == len(lifs)
    for (p, _, vals), qp in zip(groups, lifs):
        assert p.name == qp.name
        np.testing.assert_array_equal(vals.step, qp.step)
        for wi, proj in zip(vals.weights, qp.projections):
            np.testing.assert_array_equal(wi, proj.weight, err_msg=proj.name)
        if vals.bias is not None:
            np.testing.assert_array_equal(vals.bias, qp.bias)


def test_wrapper_keeps_names_graph_and_parameters():
    model = snnlite.models.cifarnet_small(seed=0)
    qat = QATModel(model, QFormat(), (3, 32, 32), "events")
    assert list(qat.state_dict()) == list(model.state_dict())
    assert [id(p) for p in qat.parameters()] == [id(p) for p in model.parameters()]
    g, h = trace(qat, (3, 32, 32)), trace(model, (3, 32, 32))
    assert [(n.name, n.kind) for n in g.nodes] == [(n.name, n.kind) for n in h.nodes]
    assert qat.requires_input_grad is False
    qat.eval()
    assert not model.training and not any(m.training for m in model.modules())
