"""Spike magnitude collapse, measured: each spiking layer of a direct-coded model under
direct and under TTFS input.

The D2E paper's second effect says the LIF pre-activation mean shrinks under sparse
event input, worse with depth. For every LIF layer of the model's traced graph (in depth
order) this reports, per input: the firing rate (spikes per neuron per step), the mean
pre-activation (the LIF's input current, BN output plus any residual, averaged over
neurons, steps and images) and the mean of its positive part (the drive that can make a
neuron fire; BN biases make the plain mean negative in many layers), with the ratios
TTFS / direct. For example, the committed
teacher on 1,000 test images:

    python examples/depth_stats.py examples/runs/teacher-cifarnet_small-T4/last.h5 \
        --data ../shared/data --test-limit 1000 --json examples/runs/depth/cifarnet_small.json
"""
import argparse
import json
from pathlib import Path

import numpy as np

from snnlite import data, encoding, nn
from snnlite.event.dense import dense_forward
from snnlite.io.checkpoint import atomic_write, load_model
from snnlite.train import subset


def layer_stats(model, images, inputs, mean, std, batch_size=100):
    """{input name: [{layer, depth, firing_rate, preact_mean}]} for ``inputs``, a list of
    (name, encoding, T); ``images`` raw [N, 3, H, W] uint8."""
    graph = nn.trace(model, images.shape[1:])
    lifs = graph.of_kind("lif")
    names = [n.name for n in lifs] + [n.inputs[0] for n in lifs]
    out = {}
    for label, enc, T in inputs:
        spikes, current, positive = (np.zeros(len(lifs)) for _ in range(3))
        for i in range(0, len(images), batch_size):
            x = images[i:i + batch_size].astype(np.float32) / np.float32(255)
            _, rec = dense_forward(model, encoding.model_input(x, enc, T, mean, std), names)
            for k, n in enumerate(lifs):
                spikes[k] += float(rec[n.name].sum())
                cur = np.broadcast_to(rec[n.inputs[0]], rec[n.name].shape)
                current[k] += float(cur.sum(dtype=np.float64))
                positive[k] += float(np.maximum(cur, 0).sum(dtype=np.float64))
        count = len(images) * T
        out[label] = [{"layer": n.name, "depth": d + 1, "neurons": n.size,
                       "firing_rate": spikes[d] / (count * n.size),
                       "preact_mean": current[d] / (count * n.size),
                       "preact_pos_mean": positive[d] / (count * n.size)}
                      for d, n in enumerate(lifs)]
    return out


def _ratio(a, b, key):
    return f"{a[key] / b[key]:.3f}" if b[key] else "-"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", help="a direct-coded model (snnlite checkpoint)")
    p.add_argument("--data", default=None, help="dataset folder or cifar10-mini.npz "
                   "(default: $SNNLITE_DATA, then the user cache)")
    p.add_argument("--T", type=int, default=8, help="steps of the TTFS input (and of the "
                   "second direct row)")
    p.add_argument("--test-limit", type=int, default=1000, help="test images used")
    p.add_argument("--json", default=None, help="write the results here")
    a = p.parse_args(argv)
    model, cfg = load_model(a.checkpoint)
    train, test = data.load_dataset(cfg.dataset, a.data)
    test = subset(test, a.test_limit)
    inputs = [("direct", "direct", cfg.T)]
    if a.T != cfg.T:
        inputs.append((f"direct T={a.T}", "direct", a.T))
    inputs.append(("ttfs", "ttfs", a.T))
    stats = layer_stats(model, test.images, inputs, train.mean, train.std)
    ref, ev = stats["direct"], stats["ttfs"]
    print(f"{cfg.model}, {len(test)} test images; direct T={cfg.T}, TTFS T={a.T}\n")
    print("| depth | layer | firing direct | firing TTFS | TTFS / direct | pre-act. mean direct "
          "| pre-act. mean TTFS | positive part direct | positive part TTFS | TTFS / direct |\n"
          + "|---" * 10 + "|")
    for r, e in zip(ref, ev):
        print(f"| {r['depth']} | {r['layer']} | {r['firing_rate']:.4f} | {e['firing_rate']:.4f} "
              f"| {_ratio(e, r, 'firing_rate')} | {r['preact_mean']:+.4f} | "
              f"{e['preact_mean']:+.4f} | {r['preact_pos_mean']:.4f} | "
              f"{e['preact_pos_mean']:.4f} | {_ratio(e, r, 'preact_pos_mean')} |")
    res = {"checkpoint": str(a.checkpoint), "model": cfg.model, "test_images": len(test),
           "teacher_T": cfg.T, "ttfs_T": a.T, "layers": stats}
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(res, indent=2) + "\n"
        atomic_write(Path(a.json), lambda path: Path(path).write_text(text))
    return res


if __name__ == "__main__":
    main()
