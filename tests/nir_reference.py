"""A plain-NumPy simulator of NIR semantics, independent of snnlite: for tests only.

``simulate(graph, x, dt)`` runs a flat ``nir.NIRGraph`` (no nested graphs) on x (T, B, ...)
step by step: every node, in an order that follows the edges, receives the sum of its
incoming edges; an edge that closes a cycle carries its source's output of the previous
step (zero at the first). Neurons are NIR's ODEs by one forward-Euler step of ``dt``,
charge then fire (``v >= v_threshold``) then reset to ``v_reset`` (``soft`` subtracts the
threshold instead)::

    LIF      v += dt / tau * ((v_leak - v) + r * x)
    IF       v += dt * r * x
    CubaLIF  i += dt / tau_syn * (w_in * x - i);  v += dt / tau_mem * ((v_leak - v) + r * i)
"""
import naive
import numpy as np


def _order(graph):
    """(node order from the input, back edges): a depth-first walk; an edge to a node on
    the current path closes a cycle."""
    succ = {n: [] for n in graph.nodes}
    for a, b in graph.edges:
        succ[a].append(b)
    start = next(n for n, v in graph.nodes.items() if type(v).__name__ == "Input")
    post, back, state = [], set(), {}

    def visit(n):
        state[n] = 1
        for s in succ[n]:
            if state.get(s) == 1:
                back.add((n, s))
            elif s not in state:
                visit(s)
        state[n] = 2
        post.append(n)

    visit(start)
    return post[::-1], back


def _pool(x, k, mean):
    N, C, H, W = x.shape
    y = x.reshape(N, C, H // k, k, W // k, k).sum((3, 5))
    return y / (k * k) if mean else y


def simulate(graph, x, dt, soft=()):
    """Output of ``graph`` (T, B, ...) for input x (T, B, ...); ``soft``: names of neuron
    nodes to run with soft reset. Also returns {node: outputs (T, B, ...)}."""
    order, back = _order(graph)
    T, B = x.shape[:2]
    state, prev, rec = {}, {}, {n: [] for n in order}
    for t in range(T):
        cur = {}
        for n in order:
            node = graph.nodes[n]
            typ = type(node).__name__
            if typ == "Input":
                y = x[t].astype(np.float64)
            else:
                ins = [(prev.get(a) if (a, n) in back else cur[a]) for a, b in graph.edges
                       if b == n]
                ins = [v for v in ins if v is not None]
                u = sum(ins[1:], ins[0]) if ins else 0.0
                y = _node(node, typ, u, state, n, dt, n in soft)
            cur[n] = y
            rec[n].append(y)
        prev = cur
    out = next(n for n, v in graph.nodes.items() if type(v).__name__ == "Output")
    return np.stack(rec[out]), {n: np.stack(v) for n, v in rec.items()}


def _node(node, typ, u, state, name, dt, soft):
    if typ == "Output":
        return u
    if typ == "Affine":
        return u @ node.weight.T + node.bias
    if typ == "Linear":
        return u @ node.weight.T
    if typ == "Scale":
        return u * node.scale
    if typ == "Flatten":
        return u.reshape(u.shape[0], -1)
    if typ in ("SumPool2d", "AvgPool2d"):
        return _pool(u, int(np.ravel(node.kernel_size)[0]), typ == "AvgPool2d")
    if typ == "Conv2d":
        s, p = int(np.ravel(node.stride)[0]), int(np.ravel(node.padding)[0])
        return naive.conv2d(u, node.weight, node.bias, s, p)
    if typ == "Threshold":
        return (u >= node.threshold).astype(float)
    v_reset = getattr(node, "v_reset", None)
    v_reset = np.asarray(0.0 if v_reset is None else v_reset)
    if typ == "LIF":
        v = state.get(name, np.broadcast_to(v_reset, u.shape).astype(float))
        v = v + dt / node.tau * ((node.v_leak - v) + node.r * u)
    elif typ == "IF":
        v = state.get(name, np.broadcast_to(v_reset, u.shape).astype(float))
        v = v + dt * node.r * u
    elif typ == "CubaLIF":
        v, i = state.get(name, (np.broadcast_to(v_reset, u.shape).astype(float),
                                np.zeros(u.shape)))
        i = i + dt / node.tau_syn * (node.w_in * u - i)
        v = v + dt / node.tau_mem * ((node.v_leak - v) + node.r * i)
    else:
        raise NotImplementedError(typ)
    s = (v >= node.v_threshold).astype(float)
    v = v - s * node.v_threshold if soft else np.where(s > 0, v_reset, v)
    state[name] = (v, i) if typ == "CubaLIF" else v
    return s
