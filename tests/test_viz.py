"""``minires.viz.draw_graph``: the drawn nodes and edges are the autograd graph's, leaves show
their names and gradients, the SVG is well-formed XML, and bad input gets a clear answer."""
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

import minires as mr
from minires.models.blocks import BasicBlock
from minires.viz import draw_graph
from minires.viz.layout import layer_of_each_node, layout

SVG = "{http://www.w3.org/2000/svg}"
ROOT = Path(__file__).resolve().parents[1]


def small_expression():
    a = mr.tensor(0.5, requires_grad=True)
    b = mr.tensor(-1.5, requires_grad=True)
    L = (a * b + a.exp()).tanh()
    return a, b, L


def texts(svg: str) -> list[str]:
    return [t.text for t in ET.fromstring(svg).iter(f"{SVG}text")]


def test_nodes_and_edges_are_the_graph_of_a_small_expression():
    a, b, L = small_expression()
    graph = draw_graph(L, params={"a": a, "b": b})
    assert Counter(n.title for n in graph.nodes) == Counter(["Tanh", "Add", "Mul", "Exp", "a", "b"])
    assert Counter(graph.edge_names()) == Counter(
        [("a", "Mul"), ("b", "Mul"), ("a", "Exp"), ("Mul", "Add"), ("Exp", "Add"), ("Add", "Tanh")])
    assert graph.nodes[0].title == "Tanh" and graph.nodes[0].is_output
    assert [n.kind for n in graph.nodes].count("leaf") == 2


def test_op_boxes_show_shape_and_dtype_and_leaves_their_name_and_gradient_once_computed():
    w = mr.randn(3, 5, dtype=mr.float64, requires_grad=True)
    x = mr.randn(4, 3, dtype=mr.float64)                    # a constant: not drawn
    loss = (x @ w).relu().sum()
    graph = draw_graph(loss, params={"w": w})
    before = texts(graph.source)
    assert [n.title for n in graph.nodes] == ["Sum", "ReLU", "MatMul", "w"]
    assert "(4, 5) float64" in before and "(3, 5) float64" in before and "scalar float64" in before
    assert "w" in before and not any("grad" in t for t in before)
    loss.backward()
    after = texts(graph.source)                             # the same drawing, rendered again
    norm = float(np.linalg.norm(w.grad.numpy()))
    assert f"‖grad‖ {norm:.4g}" in after


def test_tiny_leaves_show_their_values_and_gradient_values():
    a, b, L = small_expression()
    graph = draw_graph(L, params={"a": a, "b": b})
    L.backward()
    shown = texts(graph.source)
    assert "data 0.5" in shown and "data -1.5" in shown
    assert f"grad {a.grad.item():.4g}" in shown and f"grad {b.grad.item():.4g}" in shown


def test_unnamed_leaves_are_called_by_their_shape():
    w = mr.randn(2, 3, requires_grad=True)
    graph = draw_graph((w * 2).sum())
    assert [n.title for n in graph.nodes if n.kind == "leaf"] == ["leaf (2, 3)"]


def test_svg_parses_and_has_one_group_per_node_and_one_path_per_distinct_edge(tmp_path):
    a, b, L = small_expression()
    graph = draw_graph(L, params={"a": a, "b": b})
    root = ET.fromstring(graph._repr_svg_())
    assert root.tag == f"{SVG}svg"
    groups = [g for g in root.iter(f"{SVG}g") if "node" in g.get("class", "")]
    assert len(groups) == len(graph.nodes) == 6
    edges = [p for p in root.iter(f"{SVG}path") if p.get("class") == "edge"]
    assert len(edges) == len(set(graph.edges)) == 6
    path = graph.save(tmp_path / "graph")
    assert path.endswith("graph.svg")
    assert ET.parse(path).getroot().tag == f"{SVG}svg"
    assert Path(path).read_text(encoding="utf-8") == graph.source


def test_an_input_used_twice_by_one_node_is_one_arrow_marked_x2():
    a = mr.tensor(3.0, requires_grad=True)
    graph = draw_graph(a + a, params={"a": a})
    assert graph.edge_names() == [("a", "Add"), ("a", "Add")]
    assert "×2" in texts(graph.source)


def test_a_residual_blocks_add_has_two_incoming_paths_the_branch_and_the_shortcut():
    block = BasicBlock(4, 4, stride=1)
    x = mr.randn(2, 4, 6, 6, requires_grad=True)
    graph = draw_graph(block(x), params={"x": x, **dict(block.named_parameters())})
    names = graph.edge_names()
    assert ("Add", "ReLU") in names
    into_add = sorted(u for u, v in names if v == "Add")
    assert into_add == ["BatchNorm", "x"]               # the branch's last BN, the identity shortcut
    assert ("x", "Conv2d") in names                     # x also starts the branch
    assert {"branch.conv1.weight", "branch.bn2.bias"} <= {n.title for n in graph.nodes}
    ET.fromstring(graph.source)


def test_layers_follow_the_longest_path_and_every_arrow_points_down():
    # 0 <- 1 <- 2 <- 3, and 3 -> 0 directly: 3 is three layers up, its arrow to 0 has 2 waypoints
    edges = [(1, 0), (2, 1), (3, 2), (3, 0)]
    assert layer_of_each_node(4, edges) == [0, 1, 2, 3]
    layers, routes = layout(4, edges)
    assert [sorted(v for v in row if v < 4) for row in layers] == [[0], [1], [2], [3]]
    assert len(routes[(3, 0)]) == 4 and all(w >= 4 for w in routes[(3, 0)][1:-1])
    assert routes[(1, 0)] == [1, 0]


def test_barycentre_ordering_uncrosses_two_chains():
    # two outputs of one sum: found in the order that crosses them, ordered to not cross
    edges = [(1, 0), (2, 0), (3, 2), (4, 1)]
    layers, _ = layout(5, edges)
    row1, row2 = layers[1], layers[2]
    assert row2.index(3) == row1.index(2) and row2.index(4) == row1.index(1)


def test_a_leaf_alone_is_one_box():
    w = mr.randn(3, requires_grad=True)
    graph = draw_graph(w, params={"w": w})
    assert [n.title for n in graph.nodes] == ["w"] and graph.edges == []
    assert graph.note == ""
    ET.fromstring(graph.source)


def test_a_tensor_without_a_graph_is_one_box_with_a_note_that_says_why():
    t = mr.ones(2, 2)
    graph = draw_graph(t)
    assert len(graph.nodes) == 1 and graph.edges == []
    shown = " ".join(texts(graph.source))
    assert "no graph" in shown and "requires_grad=False" in shown


def test_bad_input_gets_one_clear_line():
    with pytest.raises(TypeError, match="draw_graph: expected a minires Tensor, got list"):
        draw_graph([1.0, 2.0])
    w = mr.randn(2, requires_grad=True)
    with pytest.raises(TypeError, match=r"params\['w'\] is a ndarray"):
        draw_graph(w * 2, params={"w": np.ones(2)})


def test_a_graph_freed_by_backward_says_how_to_draw_it():
    a, b, L = small_expression()
    L.backward()
    with pytest.raises(RuntimeError, match=r"freed by backward\(\).*retain_graph=True"):
        draw_graph(L)
    a, b, L = small_expression()
    L.backward(retain_graph=True)
    assert f"grad {a.grad.item():.4g}" in texts(draw_graph(L, params={"a": a}).source)


def test_nothing_below_viz_imports_it():
    for path in (ROOT / "minires").rglob("*.py"):
        if "viz" in path.relative_to(ROOT / "minires").parts:
            continue
        text = path.read_text(encoding="utf-8")
        assert "import viz" not in text and ".viz import" not in text and "minires.viz" not in \
            text.replace('"viz"', ""), f"{path} imports minires.viz"
    code = ("import sys, minires, minires.nn, minires.models, minires.diagnostics, minires.train, "
            "minires.cli; assert 'minires.viz' not in sys.modules; "
            "import minires as mr; mr.viz.draw_graph")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr


def test_a_graph_on_the_strict_device_draws_with_its_gradients():
    # the drawing reads values and gradients through .numpy(), the one door to the host
    w = mr.randn(3, 5, device="strict", requires_grad=True)
    a = mr.tensor(2.0, device="strict", requires_grad=True)
    loss = (w * a).sum()
    graph = draw_graph(loss, params={"w": w, "a": a})
    loss.backward()
    shown = texts(graph.source)
    assert f"grad {a.grad.item():.4g}" in shown
    assert f"‖grad‖ {float(np.linalg.norm(w.grad.numpy())):.4g}" in shown


def test_boxes_never_overlap_and_fit_in_the_drawing():
    block = BasicBlock(4, 8, stride=2)                  # an option-A block: the shortcut is an op
    x = mr.randn(2, 4, 6, 6, requires_grad=True)
    root = ET.fromstring(draw_graph(block(x), params={"x": x}).source)
    width, height = float(root.get("width")), float(root.get("height"))
    boxes = [tuple(float(r.get(k)) for k in ("x", "y", "width", "height"))
             for r in root.iter(f"{SVG}rect")]
    for i, (x1, y1, w1, h1) in enumerate(boxes):
        assert 0 <= x1 and x1 + w1 <= width + 1 and 0 <= y1 and y1 + h1 <= height + 1
        for x2, y2, w2, h2 in boxes[i + 1:]:
            apart = x1 + w1 <= x2 or x2 + w2 <= x1 or y1 + h1 <= y2 or y2 + h2 <= y1
            assert apart, f"boxes overlap: {(x1, y1, w1, h1)} and {(x2, y2, w2, h2)}"
