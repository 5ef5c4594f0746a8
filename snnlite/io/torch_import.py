"""Load PyTorch / SpikingJelly state dicts (``.pth``) into snnlite models, without torch.

``load_torch_state_dict(model, path, strict=True, key=None, rename=None)`` reads the file
with :func:`~snnlite.io.torch_pth.load_pth` and copies every parameter and buffer
(batch-norm running statistics and ``num_batches_tracked`` included) into a snnlite
model of the same structure: ``cifarnet_small``, the spiking ResNets, a ``Sequential``.

Names
-----
snnlite uses PyTorch's names, so a model built from SpikingJelly's ``layer.*`` modules in
an ``nn.Sequential`` (or SpikingJelly's spiking ResNet layout) loads as it is. Neurons
hold no state-dict entries in SpikingJelly. These renamings are tried, in order, and the
first that gives exactly the model's names is used:

1. ``exact``: the names as stored (a ``module.`` prefix on every key, left by
   ``nn.DataParallel``, is already stripped by ``load_pth``).
2. ``drop_module``: ``.module`` path segments removed. SpikingJelly before 0.0.0.0.14
   kept the layers of ``SeqToANNContainer`` / ``MultiStepContainer`` in ``self.module``:
   ``3.module.weight -> 3.weight``, ``0.module.1.bias -> 0.1.bias`` (then rule 3).
3. ``flatten``: nested numbered containers flattened into the enclosing ``Sequential``.
   SpikingJelly's ``SeqToANNContainer(conv, bn)`` is an ``nn.Sequential``, so
   ``nn.Sequential(SeqToANNContainer(conv, bn), LIF, ...)`` stores ``0.0.weight,
   0.1.weight, ...`` where the flat snnlite ``Sequential`` has ``0.weight, 1.weight``.
   Item ``i`` of a container whose keys look like ``P.i.j.*`` takes ``max(j) + 1``
   places, any other item (parameterless ones like a LIF, which have no keys) one:
   ``P.i.j.rest -> P.(offset(i) + j).rest``. A container that ends in parameterless
   layers (e.g. ``SeqToANNContainer(conv, bn, pool)``) breaks this count: the names
   then do not match and loading fails with the lists of names, never silently.
   3b. ``drop_module+flatten``: rules 2 and 3 together.

Anything else: pass ``rename``, a dict {file name: model name} or a function of the file
name, applied before the rules. Non-array entries of the state dict are ignored.

Checks: missing and unexpected names raise ``ValueError`` when ``strict``, summarised on one
line (how many of each, the first few, the file's original names, the closest naming
rule and how many names it matches); a shape mismatch always raises, naming both keys,
and so do NaN or infinite values (:class:`~snnlite.io.checkpoint.NonFiniteError`, naming
the file's tensors). Values are cast to the dtype of the array they replace (float64
files load into float32 models).
"""
import re

import numpy as np

from .checkpoint import NonFiniteError, describe_names, non_finite
from .torch_pth import load_pth

__all__ = ["load_torch_state_dict", "mismatch_summary", "torch_key_candidates"]

_DIGIT = re.compile(r"\d+")


def _drop_module(key):
    parts = key.split(".")
    kept = [p for p in parts[:-1] if p != "module"] + parts[-1:]
    return ".".join(kept)


def _flatten_nested(keys):
    """{old: new} flattening numbered containers nested in numbered containers."""
    split = {k: k.split(".") for k in keys}
    # prefixes P with keys P.i.j.* (i, j numbers): the containers to flatten into
    nested = {}
    for parts in split.values():
        for q in range(len(parts) - 2):
            if _DIGIT.fullmatch(parts[q]) and _DIGIT.fullmatch(parts[q + 1]):
                prefix = tuple(parts[:q])
                j = int(parts[q + 1])
                sizes = nested.setdefault(prefix, {})
                sizes[int(parts[q])] = max(sizes.get(int(parts[q]), 0), j + 1)
                break
    out = {}
    for k, parts in split.items():
        new = parts
        for prefix, sizes in nested.items():
            n = len(prefix)
            if tuple(parts[:n]) != prefix or len(parts) <= n + 1 or \
                    not _DIGIT.fullmatch(parts[n]):
                continue
            i = int(parts[n])
            offset = sum(sizes.get(t, 1) for t in range(i))
            if i in sizes and len(parts) > n + 2 and _DIGIT.fullmatch(parts[n + 1]):
                new = list(prefix) + [str(offset + int(parts[n + 1]))] + parts[n + 2:]
            else:
                new = list(prefix) + [str(offset)] + parts[n + 1:]
            break
        out[k] = ".".join(new)
    return out


def torch_key_candidates(keys):
    """[(rule name, {file key: model key})] for the renaming rules, in order."""
    keys = list(keys)
    exact = {k: k for k in keys}
    dropped = {k: _drop_module(k) for k in keys}
    flat = _flatten_nested(keys)
    flat_of_dropped = _flatten_nested(list(dropped.values()))
    both = {k: flat_of_dropped[v] for k, v in dropped.items()}
    return [("exact", exact), ("drop_module", dropped), ("flatten", flat),
            ("drop_module+flatten", both)]


def _apply_rename(sd, rename):
    if rename is None:
        return sd
    fn = (lambda k: rename.get(k, k)) if isinstance(rename, dict) else rename
    out = {}
    for k, v in sd.items():
        new = fn(k)
        if new in out:
            raise ValueError(f"load_torch_state_dict: rename maps two keys to {new!r}")
        out[new] = v
    return out


def _names(names, limit):
    head = ", ".join(repr(n) for n in names[:limit])
    return head + (f" and {len(names) - limit} more" if len(names) > limit else "")


def mismatch_summary(missing, unexpected, limit=4):
    """One line for people: how many names are missing (model names not in the file) and
    unexpected (file names not in the model), and the first ``limit`` of each."""
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing (in the model, not in the file): "
                     f"{_names(missing, limit)}")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected (in the file, not in the model): "
                     f"{_names(unexpected, limit)}")
    return "; ".join(parts)


def load_torch_state_dict(model, path, strict=True, key=None, rename=None):
    """Load the state dict in the ``.pth`` file ``path`` into ``model`` (in place).

    ``key`` selects a nested state dict (see ``load_pth``); ``rename`` maps file names to
    model names first (dict or function). Returns ``dict(rule, mapping, missing,
    unexpected)``: the naming rule used, {model name: file name}, and the model names
    not in the file / file names not in the model (empty when ``strict``).
    """
    raw = load_pth(path, key=key)
    sd = {k: v for k, v in raw.items() if isinstance(v, np.ndarray)}
    sd = _apply_rename(sd, rename)
    own = model.state_dict()
    best = None
    for rule, mapping in torch_key_candidates(sd):
        targets = list(mapping.values())
        if len(set(targets)) != len(targets):
            continue  # a rule that merges two names is not a renaming
        hits = sum(t in own for t in targets)
        if best is None or hits > best[0]:
            best = (hits, rule, mapping)
        if hits == len(own) == len(mapping):
            break
    hits, rule, mapping = best if best else (0, "exact", {k: k for k in sd})
    inverse = {v: k for k, v in mapping.items()}
    missing = [k for k in own if k not in inverse]
    unexpected = [k for k, v in mapping.items() if v not in own]
    if strict and (missing or unexpected):
        raise ValueError(
            f"load_torch_state_dict: {path}: names do not match the model "
            f"({type(model).__name__}, {len(own)} names; the closest naming rule "
            f"'{rule}' matches {hits}): "
            + mismatch_summary(missing, unexpected)
            + ("; is it the same model? (or pass rename=)" if hits < len(own) / 2 else ""))
    state = {}
    for name, ref in own.items():
        if name not in inverse:
            continue
        src = inverse[name]
        value = np.asarray(sd[src])
        if value.shape != ref.shape:
            via = "" if src == name else f" (file key '{src}')"
            raise ValueError(f"load_torch_state_dict: {path}: '{name}'{via}: the model "
                             f"expects shape {ref.shape}, the file has {value.shape}")
        if np.issubdtype(ref.dtype, np.floating) and value.dtype.kind not in "fiu":
            raise ValueError(f"load_torch_state_dict: {path}: '{name}': expected numbers, "
                             f"got dtype {value.dtype}")
        state[name] = value
    bad = [inverse[k] for k in non_finite(state)]
    if bad:
        raise NonFiniteError(f"load_torch_state_dict: {path}: NaN or infinity in {len(bad)} "
                             f"tensor(s): {describe_names(bad)}", bad)
    model.load_state_dict(state, strict=False)
    return {"rule": rule, "mapping": {v: k for k, v in mapping.items() if v in own},
            "missing": missing, "unexpected": unexpected}
