"""Write a laid-out graph as SVG text: one rounded box per node, one curved arrow per edge.

Text is monospace, so a box's width follows from its longest line without measuring fonts. The
first layer (the inputs) is at the top, the output at the bottom, arrows point the way the data
flows (from an input to the node that consumed it), as torchviz draws them. An input used twice by
one node (``a + a``) gets one arrow marked ``×2``.
"""
from __future__ import annotations

from collections import Counter
from xml.sax.saxutils import escape

CHAR_WIDTH = 7.3      # px per character of 12 px monospace
LINE_HEIGHT = 15
PADDING = 8
GAP_X, GAP_Y, MARGIN = 18, 38, 12
WAYPOINT_WIDTH = 2
FILL = {"op": "#eeeeee", "leaf": "#d6e6f5", "output": "#d5efcf"}


def box_size(lines: list[str]) -> tuple[float, float]:
    width = max(len(line) for line in lines) * CHAR_WIDTH + 2 * PADDING
    return width, len(lines) * LINE_HEIGHT + 2 * PADDING - 4


def render(nodes, edges, placement, note: str = "") -> str:
    """The SVG document for ``nodes`` laid out by :func:`.layout.layout` (``placement``)."""
    layers, routes = placement
    lines = [node.lines() for node in nodes]
    size = {v: box_size(node_lines) for v, node_lines in enumerate(lines)}
    row_heights = [max(size[v][1] for v in row if v in size) for row in layers]
    for depth, row in enumerate(layers):        # a waypoint: a thin box as tall as its row
        size.update({v: (WAYPOINT_WIDTH, row_heights[depth]) for v in row if v >= len(nodes)})
    centre = column_centres(layers, size, routes)
    left_edge = min(centre[v] - size[v][0] / 2 for row in layers for v in row)
    right_edge = max(centre[v] + size[v][0] / 2 for row in layers for v in row)
    width = max(right_edge - left_edge, len(note) * CHAR_WIDTH) + 2 * MARGIN

    # the rows from the top (the last layer) down to the output
    x, y = {}, {}
    top = MARGIN
    for depth in range(len(layers) - 1, -1, -1):
        for v in layers[depth]:
            x[v] = centre[v] - size[v][0] / 2 - left_edge + MARGIN     # the top-left corner
            y[v] = top + (row_heights[depth] - size[v][1]) / 2
        top += row_heights[depth] + GAP_Y
    height = top - GAP_Y + MARGIN + (LINE_HEIGHT + 6 if note else 0)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
           f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="monospace" font-size="12">',
           '<defs><marker id="minires-arrow" viewBox="0 0 10 10" refX="10" refY="5" '
           'markerWidth="7" markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" '
           'fill="#555"/></marker></defs>']
    for (u, v), count in Counter(edges).items():
        out.append(f'<path class="edge" d="{edge_path(routes[(u, v)], x, y, size)}" fill="none" '
                   f'stroke="#555" marker-end="url(#minires-arrow)"/>')
        if count > 1:
            before = routes[(u, v)][-2]
            label_x = (x[before] + size[before][0] / 2 + x[v] + size[v][0] / 2) / 2 + 4
            out.append(f'<text x="{label_x:.1f}" y="{y[v] - GAP_Y / 2:.1f}">×{count}</text>')
    for v, node in enumerate(nodes):
        kind = "output" if node.is_output else node.kind
        w, h = size[v]
        out.append(f'<g class="node {node.kind}"><title>{escape(" | ".join(lines[v]))}</title>'
                   f'<rect x="{x[v]:.1f}" y="{y[v]:.1f}" width="{w:.1f}" height="{h:.1f}" rx="5" '
                   f'fill="{FILL[kind]}" stroke="#555"/>')
        for i, text in enumerate(lines[v]):
            weight = ' font-weight="bold"' if i == 0 else ""
            out.append(f'<text x="{x[v] + PADDING:.1f}" '
                       f'y="{y[v] + PADDING + 8 + i * LINE_HEIGHT:.1f}"{weight}>{escape(text)}</text>')
        out.append("</g>")
    if note:
        out.append(f'<text class="note" x="{MARGIN}" y="{height - MARGIN:.1f}" fill="#a00">'
                   f'{escape(note)}</text>')
    out.append("</svg>")
    return "\n".join(out)


def column_centres(layers, size, routes, sweeps: int = 4) -> dict:
    """The horizontal centre of every box, keeping each row's order: start from each row packed
    and centred, then pull every box towards the mean centre of its neighbours in the row above
    (going down) or below (going up), as far as the boxes beside it allow. Chains of boxes end
    up straight, and a shortcut's waypoints stay in one lane."""
    above: dict = {}
    below: dict = {}
    for chain in routes.values():
        for a, b in zip(chain, chain[1:]):
            below.setdefault(a, []).append(b)
            above.setdefault(b, []).append(a)
    centre = {}
    for row in layers:
        left = -(sum(size[v][0] for v in row) + GAP_X * (len(row) - 1)) / 2
        for v in row:
            centre[v] = left + size[v][0] / 2
            left += size[v][0] + GAP_X
    for sweep in range(sweeps):
        down = sweep % 2 == 0
        order = range(len(layers) - 2, -1, -1) if down else range(1, len(layers))
        for depth in order:
            row = layers[depth]
            neighbours = above if down else below
            wanted = [sum(centre[u] for u in neighbours[v]) / len(neighbours[v])
                      if neighbours.get(v) else centre[v] for v in row]
            centre.update(zip(row, spread_apart(wanted, [size[v][0] for v in row])))
    return centre


def spread_apart(wanted: list[float], widths: list[float]) -> list[float]:
    """Centres as close to ``wanted`` as the order and a gap of GAP_X between boxes allow: the
    mean of a left-to-right pass (pushing right) and a right-to-left pass (pushing left)."""
    n = len(wanted)
    gap = [(widths[i] + widths[i + 1]) / 2 + GAP_X for i in range(n - 1)]
    rightward, leftward = list(wanted), list(wanted)
    for i in range(1, n):
        rightward[i] = max(rightward[i], rightward[i - 1] + gap[i - 1])
    for i in range(n - 2, -1, -1):
        leftward[i] = min(leftward[i], leftward[i + 1] - gap[i])
    return [(a + b) / 2 for a, b in zip(rightward, leftward)]


def edge_path(chain: list[int], x, y, size) -> str:
    """An arrow from the bottom of its input to the top of its consumer: an S-curve between
    consecutive rows, a straight line down through each waypoint."""
    centre = {v: x[v] + size[v][0] / 2 for v in chain}
    x0, y0 = centre[chain[0]], y[chain[0]] + size[chain[0]][1]
    parts = [f"M{x0:.1f},{y0:.1f}"]
    for step, v in enumerate(chain[1:], start=1):
        x1, y1 = centre[v], y[v]
        bend = (y1 - y0) / 2
        parts.append(f"C{x0:.1f},{y0 + bend:.1f} {x1:.1f},{y1 - bend:.1f} {x1:.1f},{y1:.1f}")
        if step < len(chain) - 1:                           # through the waypoint
            x0, y0 = x1, y1 + size[v][1]
            parts.append(f"L{x0:.1f},{y0:.1f}")
    return " ".join(parts)
