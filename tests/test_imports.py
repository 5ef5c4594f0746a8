"""Imports run one way: kernels -> functional -> nn -> models -> train / transfer / event /
io -> cli, with no cycles.

Every ``import`` and ``from ... import`` in snnlite/ is read with ``ast`` (module level and
inside functions, relative imports resolved), nothing is executed: a function-level import
that closes a cycle is as much a cycle as a top-level one, it only fails later.
"""
import ast
import pathlib

import pytest

PKG = pathlib.Path(__file__).resolve().parents[1] / "snnlite"
ROOT = "snnlite"


def _sources(pkg=PKG):
    """{dotted module name: path} of every module of the package folder ``pkg``."""
    out = {}
    for path in sorted(pkg.rglob("*.py")):
        parts = list(path.relative_to(pkg.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _resolve(name, modules):
    """The longest prefix of dotted ``name`` that is a module of the package."""
    parts = name.split(".")
    while parts:
        cand = ".".join(parts)
        if cand in modules:
            return cand
        parts.pop()
    return None


def _imports(mod, path, modules):
    """[(target module, line)] for every snnlite import in file ``path`` of module ``mod``."""
    is_pkg = path.name == "__init__.py"
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = mod.split(".") if is_pkg else mod.split(".")[:-1]
                base = base[:len(base) - (node.level - 1)]
                base = ".".join(base + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            # ``from pkg import sub`` imports the submodule pkg.sub when there is one
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                     for a in node.names]
        else:
            continue
        for name in names:
            if name == ROOT or name.startswith(ROOT + "."):
                target = _resolve(name, modules)
                assert target is not None, f"{path}:{node.lineno}: imports missing {name}"
                out.append((target, node.lineno))
    return out


@pytest.fixture(scope="module")
def graph():
    """{module: {imported module: first line}}."""
    modules = _sources()
    g = {}
    for mod, path in modules.items():
        edges = {}
        for target, line in _imports(mod, path, modules):
            if target != mod:
                edges.setdefault(target, (line, path))
        g[mod] = edges
    return g


def _cycles(g):
    """Strongly connected components with more than one module (Tarjan), each as one
    concrete cycle through its members."""
    index, low, stack, on, comps = {}, {}, [], set(), []
    counter = [0]

    def visit(v):  # recursion depth is bounded by the number of modules (~100)
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in g[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                comps.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return [_cycle_through(g, comp) for comp in comps]


def _cycle_through(g, comp):
    """A shortest cycle from the first module of strongly connected ``comp`` back to it."""
    members, start = set(comp), comp[0]
    prev, frontier = {}, [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(g[v]):
                if w == start:  # closed: walk the predecessors back to start
                    path = [v]
                    while path[-1] != start:
                        path.append(prev[path[-1]])
                    return path[::-1] + [start]
                if w in members and w not in prev:
                    prev[w] = v
                    nxt.append(w)
        frontier = nxt
    raise AssertionError(f"no cycle through {comp}")


def _describe(g, cycle):
    steps = []
    for a, b in zip(cycle, cycle[1:]):
        line, path = g[a][b]
        steps.append(f"  {a} -> {b}   ({path.relative_to(PKG.parent)}:{line})")
    return "\n".join(steps)


def test_the_parser_sees_function_level_and_relative_imports(tmp_path):
    pkg = tmp_path / "snnlite"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from . import a\n")
    (pkg / "a.py").write_text("def f():\n    from .sub import b\n    from .. import x\n")
    (pkg / "sub" / "__init__.py").write_text("from .b import y\nfrom .. import a\n")
    (pkg / "sub" / "b.py").write_text("import snnlite.a\nfrom snnlite.sub import nothing\n")
    mods = _sources(pkg)
    assert set(mods) == {"snnlite", "snnlite.a", "snnlite.sub", "snnlite.sub.b"}
    got = {m: sorted(t for t, _ in _imports(m, p, mods)) for m, p in mods.items()}
    assert got == {"snnlite": ["snnlite.a"],
                   "snnlite.a": ["snnlite.sub.b"],  # ``from .. import x``: outside snnlite
                   "snnlite.sub": ["snnlite.a", "snnlite.sub.b"],
                   "snnlite.sub.b": ["snnlite.a", "snnlite.sub"]}
    g = {m: {t: (1, p) for t in got[m]} for m, p in mods.items()}
    assert _cycles(g) == [["snnlite.a", "snnlite.sub.b", "snnlite.a"]]  # the shortest
    del g["snnlite.sub.b"]["snnlite.a"]
    assert _cycles(g) == [["snnlite.a", "snnlite.sub.b", "snnlite.sub", "snnlite.a"]]
    g["snnlite.a"] = {}
    assert _cycles(g) == [["snnlite.sub", "snnlite.sub.b", "snnlite.sub"]]
    del g["snnlite.sub.b"]["snnlite.sub"]
    assert _cycles(g) == []


def test_no_import_cycles(graph):
    cycles = _cycles(graph)
    assert not cycles, "import cycles:\n" + "\n\n".join(_describe(graph, c) for c in cycles)


def _layer(mod):
    parts = mod.split(".")
    if parts[1:3] == ["nn", "functional"]:
        return "functional"
    return parts[1] if len(parts) > 1 else ROOT


def _private(layer):
    """Top-level private modules (_config, the thread pool, BLAS control, ...): the base."""
    return layer.startswith("_") and layer != "__main__"


HELPERS = {"encoding", "losses", "optim", "data"}
TOP = {"train", "transfer", "event", "io", "quant", "bench", "runtime", "plot", "cli"}
ALLOWED = {
    # layer: what it may import besides itself
    "kernels": lambda dst: dst == "_config",
    "functional": lambda dst: dst == "kernels" or _private(dst),
}
FORBIDDEN = {
    "nn": {"models"} | TOP,
    "models": TOP,
    **{h: {"nn", "models"} | TOP for h in ("encoding", "losses", "optim", "data")},
    "io": {"train", "transfer", "event", "bench", "plot", "cli"},
    "event": {"train", "transfer", "bench", "plot", "cli"},
    "train": {"transfer", "event", "bench", "plot", "cli"},
    "transfer": {"event", "bench", "plot", "cli"},
    "bench": {"transfer", "event", "plot", "cli"},
    "plot": {"train", "transfer", "bench", "cli"},  # figures read runs and run models
}


def _layer_violations(graph):
    bad = []
    for mod, edges in sorted(graph.items()):
        src = _layer(mod)
        for target, (line, path) in sorted(edges.items()):
            dst = _layer(target)
            where = f"{path.relative_to(PKG.parent)}:{line}: {mod} imports {target}"
            if dst == src:
                continue
            if target == ROOT and mod != ROOT + ".__main__":
                bad.append(f"{where} (the package root; import the module that defines it)")
            elif _private(src) and not _private(dst):
                bad.append(f"{where} (private base modules import only each other)")
            elif src in ALLOWED and not ALLOWED[src](dst):
                bad.append(f"{where} ({src} may not import {dst})")
            elif dst in FORBIDDEN.get(src, ()):
                bad.append(f"{where} ({src} sits below {dst})")
            elif dst == "cli" and src not in ("cli", ROOT) and mod != ROOT + ".__main__":
                bad.append(f"{where} (only the command line imports cli)")
    return bad


def test_layers_import_one_way(graph):
    bad = _layer_violations(graph)
    assert not bad, "imports against the layer order:\n" + "\n".join(bad)


def test_the_layer_check_catches_each_kind_of_violation():
    here = PKG / "x.py"
    g = {"snnlite.transfer.cli": {"snnlite.cli.common": (1, here)},  # sideways into cli
         "snnlite.io.checkpoint": {"snnlite": (2, here)},  # the root, for __version__
         "snnlite.kernels.lif": {"snnlite.nn.functional": (3, here),
                                 "snnlite._config": (4, here)},  # only the latter is fine
         "snnlite.nn.functional": {"snnlite.nn.module": (5, here)},
         "snnlite.event.cli": {"snnlite.train": (6, here)},
         "snnlite.bench": {"snnlite.transfer": (7, here)},
         "snnlite._config": {"snnlite.nn": (8, here)},
         "snnlite.__main__": {"snnlite.cli": (9, here)},  # fine
         "snnlite.cli.eval": {"snnlite.io.checkpoint": (10, here)}}  # fine
    bad = _layer_violations(g)
    assert [b.split(":")[1] for b in bad] == ["8", "7", "6", "2", "3", "5", "1"], bad


def test_the_layer_table_names_real_layers(graph):
    layers = {_layer(m) for m in graph}
    assert {"kernels", "functional", "nn", "models", "train", "transfer", "event", "io",
            "cli"} <= layers
    rest = {x for x in layers - {"kernels", "functional", "nn", "models", ROOT, "__main__"}
            if not _private(x)}
    assert HELPERS | TOP >= rest, rest - HELPERS - TOP
