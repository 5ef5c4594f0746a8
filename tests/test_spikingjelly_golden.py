"""Agreement with SpikingJelly 2.0 / PyTorch numbers recorded in tests/data/sj_golden.npz
(made by examples/benchmarks/make_sj_golden.py; these tests never import torch)."""
import pathlib

import numpy as np
import pytest

import snnlite
from snnlite.nn import functional as F

GOLDEN = np.load(pathlib.Path(__file__).parent / "data" / "sj_golden.npz")
LIF_CASES = sorted({k.split("/")[1] for k in GOLDEN.files if k.startswith("lif/")})


@pytest.mark.parametrize("case", LIF_CASES)
def test_lif_matches_spikingjelly(case):
    g = {k: GOLDEN[f"lif/{case}/{k}"] for k in ("x", "s", "v", "g", "dx")}
    decay = "decay1" in case
    detach = "detach1" in case
    v_reset = 0.0 if case.endswith("hard") else None
    T, N, M = g["x"].shape
    s, h, _ = F.lif_forward(g["x"].reshape(T, -1), 2.0, 1.0, v_reset, decay)
    np.testing.assert_array_equal(s.reshape(g["s"].shape), g["s"])
    # SpikingJelly's v_seq is the membrane after reset
    v = np.where(s == 1, (0.0 if v_reset is not None else h - 1.0), h)
    np.testing.assert_array_equal(v.reshape(g["v"].shape), g["v"])
    dx = F.lif_backward(g["g"].reshape(T, -1), h, 2.0, 1.0, v_reset, decay, detach, 2.0)
    np.testing.assert_allclose(dx.reshape(g["dx"].shape), g["dx"], rtol=1e-13, atol=1e-15)


def test_batch_norm_matches_pytorch():
    bn = snnlite.nn.BatchNorm2d(3, dtype=np.float64)
    bn.weight.data[:] = GOLDEN["bn/weight"]
    bn.bias.data[:] = GOLDEN["bn/bias"]
    x = GOLDEN["bn/x"][None]  # one time step
    y = bn.forward(x)
    np.testing.assert_allclose(y[0], GOLDEN["bn/y"], rtol=1e-12, atol=1e-12)
    dx = bn.backward(GOLDEN["bn/g"][None])
    np.testing.assert_allclose(dx[0], GOLDEN["bn/dx"], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(bn.weight.grad, GOLDEN["bn/dweight"], rtol=1e-12)
    np.testing.assert_allclose(bn.bias.grad, GOLDEN["bn/dbias"], rtol=1e-12)
    np.testing.assert_allclose(bn.running_mean, GOLDEN["bn/running_mean"], rtol=1e-12)
    np.testing.assert_allclose(bn.running_var, GOLDEN["bn/running_var"], rtol=1e-12)
    bn.eval()
    np.testing.assert_allclose(bn.forward(x)[0], GOLDEN["bn/y_eval"], rtol=1e-12, atol=1e-12)


def test_conv_matches_pytorch():
    s, p = int(GOLDEN["conv/stride"]), int(GOLDEN["conv/padding"])
    x, w, b = GOLDEN["conv/x"], GOLDEN["conv/w"], GOLDEN["conv/b"]
    y = F.conv2d_forward(x, w, b, s, p)
    np.testing.assert_allclose(y, GOLDEN["conv/y"], rtol=1e-12, atol=1e-12)
    dx, dw = F.conv2d_backward(GOLDEN["conv/g"], x, w, s, p)
    np.testing.assert_allclose(dx, GOLDEN["conv/dx"], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dw, GOLDEN["conv/dw"], rtol=1e-12, atol=1e-12)


def _golden_model():
    model = snnlite.models.cifarnet_small(dtype=np.float64)
    state = {k[len("model/state/"):]: GOLDEN[k] for k in GOLDEN.files
             if k.startswith("model/state/")}
    model.load_state_dict(state)
    return model


def test_cifarnet_small_matches_spikingjelly():
    """Same weights, same direct-coded batch: same spikes per layer, logits, loss, gradients,
    BN running statistics and (plain PyTorch SGD, decay on every parameter) two steps."""
    model = _golden_model()
    x = snnlite.encoding.direct(GOLDEN["model/x"][0].astype(np.float64), 4)
    np.testing.assert_array_equal(np.broadcast_to(x, GOLDEN["model/x"].shape),
                                  GOLDEN["model/x"])
    y = GOLDEN["model/y"].astype(np.int64)
    logits = model.forward(x)
    np.testing.assert_allclose(logits, GOLDEN["model/logits"], rtol=1e-9, atol=1e-11)
    for idx in (2, 5, 9, 13):
        assert model[idx].spike_count == int(GOLDEN[f"model/spikes/{idx}"]), idx
    loss, g = snnlite.losses.cross_entropy(logits, y)
    assert loss == pytest.approx(float(GOLDEN["model/loss"]), rel=1e-10)
    model.backward(g)
    for name, p in model.named_parameters():
        ref = GOLDEN[f"model/grad/{name}"]  # float32-rounded float64 gradients
        np.testing.assert_allclose(p.grad, ref, rtol=2e-5, atol=1e-7 * np.abs(ref).max(),
                                   err_msg=name)
    state = model.state_dict()
    for k in GOLDEN.files:
        if k.startswith("model/state_after/"):
            name = k[len("model/state_after/"):]
            np.testing.assert_allclose(state[name], GOLDEN[k], rtol=1e-10, err_msg=name)
    model.eval()
    np.testing.assert_allclose(model.forward(x), GOLDEN["model/eval_logits"], rtol=1e-9,
                               atol=1e-11)


def test_two_sgd_steps_match_pytorch():
    model = _golden_model()
    opt = snnlite.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True,
                            weight_decay=5e-4, decay_all=True)
    x = snnlite.encoding.direct(GOLDEN["model/x"][0].astype(np.float64), 4)
    losses = []
    for _ in range(2):
        opt.zero_grad()
        loss, g = snnlite.losses.cross_entropy(model.forward(x),
                                               GOLDEN["model/y"].astype(np.int64))
        model.backward(g)
        opt.step()
        losses.append(loss)
    np.testing.assert_allclose(losses, GOLDEN["model/sgd2_loss"], rtol=1e-6)
    state = model.state_dict()
    for name, ref in ((k[len("model/sgd2/"):], GOLDEN[k]) for k in GOLDEN.files
                      if k.startswith("model/sgd2/")):
        np.testing.assert_allclose(state[name], ref, rtol=1e-5,
                                   atol=1e-6 * max(1.0, float(np.abs(ref).max())), err_msg=name)
