"""``minires.viz``: draw a tensor's autograd graph as SVG, with no system binary.

``mr.viz.draw_graph(loss, params=dict(model.named_parameters()))`` is micrograd's ``draw_dot`` and
torchviz's ``make_dot`` for minires: one box per ``Function`` node (its op, output shape and
dtype), one per leaf (its name, shape, and ``.grad`` once computed), arrows from each input to the
node that consumed it. The layout is computed here (:mod:`.layout`) and written as plain SVG text
(:mod:`.svg`), so it works wherever Python does (Graphviz's ``dot`` is what breaks for students
on Colab and Windows). Only this package imports it; nothing below it does.
"""
from .graph import Graph, GraphNode, collect_graph, draw_graph  # noqa: F401
