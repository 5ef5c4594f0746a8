"""Train cifarnet_small (T=4) on the 1,000-image CIFAR-10 subset, in a few minutes on a CPU.

    python examples/quickstart.py [--data PATH/cifar10-mini.npz] [--epochs 8] [--out CKPT]

The data path defaults to $SNNLITE_DATA/cifar10-mini.npz. The loop is written out so that
every piece of the API shows: encoder, forward, loss, backward, optimizer, schedule. The
trained model is saved as a checkpoint (``--out``, default ``runs/quickstart.h5``) that every
``snnlite`` command reads: ``snnlite eval runs/quickstart.h5 --data PATH/cifar10-mini.npz``.
"""
import argparse
import dataclasses
import os

import numpy as np
from tqdm.auto import tqdm

import snnlite
from snnlite import data, encoding, losses, optim
from snnlite.io.checkpoint import save_checkpoint
from snnlite.io.config import TrainConfig


def run(data_path, epochs=8, T=4, batch_size=32, lr=0.05, seed=0, progress=True, out=None):
    """Train and return per-epoch dicts of train loss/accuracy and test accuracy; with
    ``out``, save the model there as a checkpoint."""
    snnlite.tune_malloc()  # reuse freed activations from the heap (see snnlite/_memory.py)
    train, test = data.load_mini(data_path)
    model = snnlite.models.cifarnet_small(num_classes=10, seed=seed)
    opt = optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    loader = data.Loader(train, batch_size, shuffle=True, augment=True, seed=seed)
    total = epochs * len(loader)
    history, step = [], 0
    for epoch in range(epochs):
        model.train()
        seen = correct = 0
        loss_sum = 0.0
        bar = tqdm(loader.epoch(epoch), total=len(loader), desc=f"epoch {epoch + 1}/{epochs}",
                   disable=not progress, leave=False)
        for x, y in bar:
            opt.lr = optim.cosine_warmup(step, total, lr, warmup_steps=len(loader))
            inputs = encoding.direct(data.normalize(x, train.mean, train.std), T)  # [T,B,3,32,32]
            logits = model.forward(inputs)                                     # [B, 10]
            loss, grad = losses.cross_entropy(logits, y)
            opt.zero_grad()
            model.backward(grad)
            opt.step()
            step += 1
            loss_sum += loss * len(y)
            seen += len(y)
            correct += int((logits.argmax(1) == y).sum())
            bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}")
        model.eval()
        xt = test.images.astype(np.float32) / 255
        test_logits = model.forward(encoding.direct(data.normalize(xt, test.mean, test.std), T))
        row = dict(epoch=epoch + 1, train_loss=loss_sum / seen, train_acc=correct / seen,
                   test_acc=float((test_logits.argmax(1) == test.labels).mean()))
        history.append(row)
        if progress:
            print(f"epoch {row['epoch']}: train loss {row['train_loss']:.3f} "
                  f"acc {row['train_acc']:.3f} | test acc {row['test_acc']:.3f}", flush=True)
    if out is not None:  # a checkpoint like snnlite train's: model, settings, where it stopped
        config = TrainConfig(model="cifarnet_small", T=T, epochs=epochs, batch_size=batch_size,
                             lr=lr, seed=seed)
        save_checkpoint(out, model.state_dict(), dataclasses.asdict(config),
                        {"epoch": epochs, "step": step, "history": history})
        if progress:
            print(f"saved the model to {out} (test accuracy {history[-1]['test_acc']:.1%}); "
                  f"try: snnlite eval {out} --data {data_path} --encoding direct ttfs")
    return history


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=os.path.join(os.environ.get("SNNLITE_DATA", "../shared/data"),
                                                   "cifar10-mini.npz"))
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--T", type=int, default=4)
    p.add_argument("--out", default="runs/quickstart.h5", help="checkpoint to write")
    args = p.parse_args()
    run(args.data, args.epochs, args.T, out=args.out)
