"""Lay a DAG out in layers, the way Graphviz's ``dot`` does in outline (Sugiyama's method).

1. **Layers by longest path from the output**: the output is layer 0, and every node sits one
   layer above the *farthest* of its consumers, so every arrow points down the page.
2. **Order within a layer by barycentres**: a node is placed near the mean position of its
   neighbours, sweeping up the layers (neighbours: the consumers below) and then down (the inputs
   above), twice. That removes most crossings of a small graph; it does not promise none.

An arrow that skips layers passes through a waypoint in each layer between (Graphviz's "virtual
nodes"), ordered with the boxes. Positions are centred on each layer (``i - (n - 1) / 2``) so
that layers of different widths compare.
"""
from __future__ import annotations

SWEEPS = 2


def layer_of_each_node(n: int, edges: list[tuple[int, int]]) -> list[int]:
    """Longest path from node 0 (the output) along the edges reversed; edges are (input, consumer).
    Each node is placed once all its consumers are (Kahn's algorithm), so the graph may be deep."""
    inputs = [[] for _ in range(n)]
    consumers_left = [0] * n
    for u, v in edges:
        inputs[v].append(u)
        consumers_left[u] += 1
    layer = [0] * n
    ready = [v for v in range(n) if consumers_left[v] == 0]
    while ready:
        v = ready.pop()
        for u in inputs[v]:
            layer[u] = max(layer[u], layer[v] + 1)
            consumers_left[u] -= 1
            if consumers_left[u] == 0:
                ready.append(u)
    return layer


def layout(n: int, edges: list[tuple[int, int]]):
    """``(layers, routes)``: the layers, output first, each a list of node indices from left to
    right, and for each distinct edge ``(input, consumer)`` the points its arrow passes through.
    An arrow that skips layers passes through one *waypoint* (an index ``>= n``) per layer it
    crosses; waypoints are ordered with the nodes, so a long arrow (a shortcut) gets a lane of
    its own instead of running across the boxes between."""
    layer = layer_of_each_node(n, edges)
    layers: list[list[int]] = [[] for _ in range(max(layer, default=0) + 1)]
    for v in range(n):                          # first order: the order the walk found them
        layers[layer[v]].append(v)
    inputs: dict[int, list[int]] = {v: [] for v in range(n)}
    consumers: dict[int, list[int]] = {v: [] for v in range(n)}
    routes: dict[tuple[int, int], list[int]] = {}
    waypoint = n
    for u, v in dict.fromkeys(edges):           # distinct edges, in order
        chain = [u]
        for depth in range(layer[u] - 1, layer[v], -1):
            layers[depth].append(waypoint)
            inputs[waypoint], consumers[waypoint] = [], []
            chain.append(waypoint)
            waypoint += 1
        chain.append(v)
        for a, b in zip(chain, chain[1:]):
            inputs[b].append(a)
            consumers[a].append(b)
        routes[(u, v)] = chain
    for _ in range(SWEEPS):
        for depth in range(1, len(layers)):                 # up: follow the consumers
            layers[depth] = by_barycentre(layers[depth], consumers, layers)
        for depth in range(len(layers) - 2, -1, -1):        # down: follow the inputs
            layers[depth] = by_barycentre(layers[depth], inputs, layers)
    return layers, routes


def by_barycentre(row: list[int], neighbours: dict[int, list[int]], layers) -> list[int]:
    """``row`` sorted by the mean centred position of each node's neighbours (a node without
    neighbours keeps its own position); the sort is stable, so ties keep their order."""
    position = centred_positions(layers)
    def key(v):
        around = neighbours[v]
        return sum(position[u] for u in around) / len(around) if around else position[v]
    return sorted(row, key=key)


def centred_positions(layers) -> dict[int, float]:
    return {v: i - (len(row) - 1) / 2 for row in layers for i, v in enumerate(row)}
