"""Graph operations for NIR import: flatten nested ``NIRGraph`` nodes, find cycles (strongly
connected components), order the condensed graph.

Nested graphs are flattened into their parent: inner node ``n`` of subgraph ``g`` becomes
``g.n`` (kept as is when its name already starts with ``g.``, as snnTorch writes them),
edges into ``g`` (or into ``g.<its Input>``) go to the successors of its Input node, edges
out of ``g`` come from the predecessors of its Output node.
"""


def flatten(nodes, edges, where):
    """(nodes, edges) with every nested NIRGraph node replaced by its contents."""
    nodes, edges = dict(nodes), list(edges)
    while True:
        sub = next((n for n, v in nodes.items() if v.get("type") == "NIRGraph"), None)
        if sub is None:
            return nodes, edges
        nodes, edges = _inline(nodes, edges, sub, where)


def _inline(nodes, edges, sub, where):
    g = nodes.pop(sub)
    inner, inner_edges = g["nodes"], g["edges"]

    def rename(n):
        return n if n.startswith(sub + ".") else f"{sub}.{n}"

    ins = [n for n, v in inner.items() if v.get("type") == "Input"]
    outs = [n for n, v in inner.items() if v.get("type") == "Output"]
    if len(ins) != 1 or len(outs) != 1:
        raise ValueError(f"{where}: NIR subgraph {sub!r} has inputs {ins} and outputs {outs}; "
                         "one of each is supported")
    i_name, o_name = ins[0], outs[0]
    for a, b in inner_edges:
        for n in (a, b):
            if n not in inner:
                raise ValueError(f"{where}: NIR edge ({a!r}, {b!r}) in subgraph {sub!r} names "
                                 f"a missing node {n!r}")
    after_in = [b for a, b in inner_edges if a == i_name and b != o_name]
    before_out = [a for a, b in inner_edges if b == o_name]  # i_name: a pass-through
    ports_in = {sub, f"{sub}.{i_name}", rename(i_name)}
    ports_out = {sub, f"{sub}.{o_name}", rename(o_name)}
    for n, v in inner.items():
        if n not in (i_name, o_name):
            new = rename(n)
            if new in nodes:
                raise ValueError(f"{where}: flattening subgraph {sub!r} makes two nodes "
                                 f"named {new!r}")
            nodes[new] = v
    outer_in = [a for a, b in edges if b in ports_in]
    out = []
    for a, b in edges:
        srcs = [rename(x) for x in before_out if x != i_name] + \
            (outer_in if i_name in before_out else []) if a in ports_out else [a]
        dsts = [rename(x) for x in after_in] if b in ports_in else [b]
        out.extend((x, y) for x in srcs for y in dsts)
    for a, b in inner_edges:
        if a != i_name and b != o_name:
            out.append((rename(a), rename(b)))
    seen, unique = set(), []
    for e in out:
        if e not in seen:
            seen.add(e)
            unique.append(e)
    return nodes, unique


def components(names, succs):
    """Strongly connected components (Tarjan, iterative), each a list of names; a single
    node is a component of its own (a cycle only if it has an edge to itself)."""
    index, low, on, stack, comps, counter = {}, {}, set(), [], [], [0]
    for root in names:
        if root in index:
            continue
        work = [(root, iter(succs[root]))]
        index[root] = low[root] = counter[0]
        counter[0] += 1
        stack.append(root)
        on.add(root)
        while work:
            n, it = work[-1]
            nxt = next(it, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter[0]
                    counter[0] += 1
                    stack.append(nxt)
                    on.add(nxt)
                    work.append((nxt, iter(succs[nxt])))
                elif nxt in on:
                    low[n] = min(low[n], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[n])
            if low[n] == index[n]:
                comp = []
                while True:
                    m = stack.pop()
                    on.discard(m)
                    comp.append(m)
                    if m == n:
                        break
                comps.append(comp[::-1])
    return comps


def topo_order(start, names, preds, succs, where):
    """Names reachable from ``start`` in a topological order (Kahn's, from the input);
    raises naming any node left over (unreachable, or in a cycle)."""
    indeg = {n: len(preds[n]) for n in names}
    if indeg[start]:
        raise ValueError(f"{where}: the Input node {start!r} has incoming edges")
    order, ready = [], [start]
    while ready:
        n = ready.pop(0)
        order.append(n)
        for s in succs[n]:
            indeg[s] -= 1
            if indeg[s] == 0:
                ready.append(s)
    stuck = [n for n in names if n not in order]
    if stuck:
        raise ValueError(f"{where}: NIR nodes {stuck} are unreachable from the input")
    return order
