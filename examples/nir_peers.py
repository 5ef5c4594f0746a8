"""Load snnlite's NIR exports into SpikingJelly, snnTorch, Norse and sinabs and count the
output spikes that differ from snnlite's (the README's interoperability table).

    python examples/nir_peers.py --peer-python /path/to/venv/bin/python [--out DIR]

snnlite (this Python) builds four small networks (LIF conv net with BN and average
pooling; IF conv net with BN and sum pooling, hard and soft reset; CubaLIF net with a
recurrent layer), exports each with the default
dt, and records its output spikes on a random binary input; the peer Python (one with
torch, nir, spikingjelly, snntorch, norse and sinabs) then loads each file with the call
the README gives and runs the same input step by step. Nothing here is needed by snnlite.
"""
import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

T, B = 16, 4


def build():
    from snnlite import nn
    r, d = np.random.default_rng(0), np.float32

    def lively(m):
        for x in m.modules():
            if isinstance(x, nn.BatchNorm2d):
                x.running_var[:] = r.uniform(0.05, 0.2, x.num_features).astype(d)
                x.bias.data[:] = r.normal(0.3, 0.3, x.num_features).astype(d)
        return m.eval()

    lif = lively(nn.Sequential(
        nn.Conv2d(2, 4, 3, 1, 1, rng=r, dtype=d), nn.BatchNorm2d(4), nn.LIF(), nn.AvgPool2d(2),
        nn.Conv2d(4, 4, 3, 1, 1, rng=r, dtype=d), nn.LIF(tau=4.0, v_threshold=0.5),
        nn.Flatten(), nn.Linear(4 * 16, 6, rng=r, dtype=d), nn.LIF(v_threshold=0.3)))
    iff = lively(nn.Sequential(
        nn.Conv2d(2, 4, 3, 1, 1, rng=r, dtype=d), nn.BatchNorm2d(4), nn.IF(), nn.SumPool2d(2),
        nn.Conv2d(4, 4, 3, 1, 1, rng=r, dtype=d), nn.IF(v_threshold=2.0), nn.Flatten(),
        nn.Linear(4 * 16, 6, rng=r, dtype=d), nn.IF()))
    soft = lively(nn.Sequential(  # soft reset (subtract the threshold), as sinabs' IAF
        nn.Conv2d(2, 4, 3, 1, 1, rng=r, dtype=d), nn.BatchNorm2d(4), nn.IF(v_reset=None),
        nn.SumPool2d(2), nn.Conv2d(4, 4, 3, 1, 1, rng=r, dtype=d),
        nn.IF(v_threshold=2.0, v_reset=None), nn.Flatten(),
        nn.Linear(4 * 16, 6, rng=r, dtype=d), nn.IF(v_reset=None)))
    lin = nn.Linear(10, 10, rng=r, dtype=d)
    lin.weight.data *= 2
    cuba = nn.Sequential(
        nn.Flatten(), nn.Linear(2 * 8 * 8, 10, rng=r, dtype=d),
        nn.Recurrent(nn.CubaLIF(2.0, 4.0), lin), nn.Linear(10, 6, rng=r, dtype=d),
        nn.CubaLIF(4.0, 2.0)).eval()
    for m in (lif, iff, soft, cuba):
        for x in m.modules():
            if isinstance(x, (nn.Conv2d, nn.Linear)):
                x.weight.data *= 2.5
    lif[7].bias.data += 0.3
    return {"lif_conv": lif, "if_conv": iff, "if_conv_soft": soft, "cuba_recurrent": cuba}


def snnlite_side(out):
    from snnlite.io.nir import export_nir
    x = (np.random.default_rng(1).random((T, B, 2, 8, 8)) < 0.3).astype(np.float32)
    np.save(out / "x.npy", x)
    rates = {}
    for name, m in build().items():
        export_nir(m, out / f"{name}.nir", input_shape=(2, 8, 8))
        y = m.forward(x)
        np.save(out / f"{name}.npy", y)
        rates[name] = float(y.mean())
    return rates


PEER = r'''
import json, sys, warnings, logging
import numpy as np, torch, nir
warnings.filterwarnings("ignore")
logging.disable(logging.WARNING)
out = sys.argv[1]
x = torch.from_numpy(np.load(f"{out}/x.npy"))
T, B = x.shape[:2]


def spikingjelly(g):
    from spikingjelly.activation_based.nir_exchange import import_from_nir
    from spikingjelly.activation_based import functional
    net = import_from_nir(g, step_mode="s")  # dt=1e-4: SpikingJelly's default
    ys, state = [], None
    for t in range(T):
        y = net(x[t], state) if state is not None else net(x[t])
        if isinstance(y, tuple):
            y, state = y
        ys.append(y)
    return torch.stack(ys)


def unflatten_batch(net):
    """NIR's Flatten(start_dim=0) excludes the batch; torch's Flatten(0) would merge it."""
    for m in net.modules():
        if isinstance(m, torch.nn.Flatten) and m.start_dim == 0:
            m.start_dim = 1
    return net


def snntorch(g):
    from snntorch.import_nir import import_from_nir
    from snntorch import utils
    net = unflatten_batch(import_from_nir(g))  # dt = 1e-4, fixed
    utils.reset(net)
    ys = []
    for t in range(T):
        y = net(x[t])
        ys.append(y[0] if isinstance(y, tuple) else y)
    return torch.stack(ys)


def norse(g):
    from norse.torch import from_nir
    net = unflatten_batch(from_nir(g, dt=1e-4))
    ys, state = [], None
    for t in range(T):
        y, state = net(x[t], state)
        ys.append(y)
    return torch.stack(ys)


def sinabs(g):
    from sinabs import from_nir
    import sinabs.layers as sl
    from sinabs.activation import SingleSpike
    net = from_nir(g, batch_size=B)
    for m in net.modules():  # NIR's IF: one spike per step, no floor under the membrane
        if isinstance(m, sl.IAF):
            m.spike_fn, m.min_v_mem = SingleSpike, None
    y = net(x.transpose(0, 1).reshape(B * T, *x.shape[2:]))  # (B*T, ...), time inside
    y = y[0] if isinstance(y, tuple) else y
    return y.reshape(B, T, -1).transpose(0, 1)


res = {}
for name in sys.argv[2:]:
    ref = np.load(f"{out}/{name}.npy")
    for peer in (spikingjelly, snntorch, norse, sinabs):
        key = f"{peer.__name__}/{name}"
        try:
            with torch.no_grad():
                y = peer(nir.read(f"{out}/{name}.nir")).detach().numpy()
            y = y.reshape(ref.shape)
            res[key] = {"differ": int((y != ref).sum()), "spikes": int(ref.sum()),
                        "total": int(ref.size)}
        except Exception as e:
            res[key] = {"error": f"{type(e).__name__}: {str(e).splitlines()[0][:160]}"}
print(json.dumps(res))
'''


FROM_PEER = r'''
import sys, warnings, logging
import numpy as np, torch, nir
warnings.filterwarnings("ignore")
logging.disable(logging.WARNING)
from spikingjelly.activation_based import functional, layer, neuron
from spikingjelly.activation_based.nir_exchange import export_to_nir
out = sys.argv[1]
torch.manual_seed(0)
net = torch.nn.Sequential(
    layer.Conv2d(2, 4, 3, padding=1), neuron.IFNode(), layer.Conv2d(4, 4, 3, padding=1),
    neuron.LIFNode(tau=3.0), layer.Flatten(), layer.Linear(4 * 8 * 8, 6),
    neuron.CUBALIFNode(c_decay=0.5, v_decay=0.75, v_threshold=0.5))
with torch.no_grad():
    for m in net.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
            m.weight *= 3
            m.bias += 0.2
nir.write(f"{out}/sj.nir", export_to_nir(net, torch.rand(1, 2, 8, 8)))
x = torch.from_numpy(np.load(f"{out}/x.npy"))
functional.set_step_mode(net, "m")
with torch.no_grad():
    np.save(f"{out}/sj_out.npy", net(x).numpy())
'''


def from_peer(out, python):
    """SpikingJelly exports IF, LIF and CubaLIF; snnlite imports the file (dt = 1e-4, as
    the error for a file without dt says) and runs the same input."""
    from snnlite.io.nir import import_nir
    proc = subprocess.run([python, "-c", FROM_PEER, str(out)], text=True, capture_output=True,
                          check=False)
    if proc.returncode:
        return f"SpikingJelly export failed: {proc.stderr.strip().splitlines()[-1]}"
    try:
        import_nir(out / "sj.nir")
    except ValueError as e:
        hint = str(e).split("; ", 1)[1]
    ref = np.load(out / "sj_out.npy")
    y = import_nir(out / "sj.nir", dt=1e-4).forward(np.load(out / "x.npy"))
    return (f"SpikingJelly -> snnlite (IF, LIF, CubaLIF): {int((y != ref).sum())} of {ref.size} "
            f"output spikes differ ({ref.mean():.2f}); without dt: {hint}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--peer-python", required=True,
                    help="a Python with torch, nir, spikingjelly, snntorch, norse, sinabs")
    ap.add_argument("--out", type=Path, help="folder for the files (default: a temporary one)")
    args = ap.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="nir-peers-"))
    out.mkdir(parents=True, exist_ok=True)
    rates = snnlite_side(out)
    proc = subprocess.run([args.peer_python, "-c", PEER, str(out), *rates], text=True,
                          capture_output=True, check=False)
    if proc.returncode:
        sys.exit(f"peer run failed:\n{proc.stderr}")
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"{'peer':<14}{'network':<16}result   (T={T}, B={B}; snnlite output firing rate)")
    for key, r in res.items():
        peer, name = key.split("/")
        what = r["error"] if "error" in r else \
            f"{r['differ']} of {r['total']} output spikes differ ({rates[name]:.2f})"
        print(f"{peer:<14}{name:<16}{what}")
    print(from_peer(out, args.peer_python))


if __name__ == "__main__":
    main()
