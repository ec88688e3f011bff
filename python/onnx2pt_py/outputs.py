"""Make a converted model return exactly the ONNX graph's outputs.

onnx2torch returns one value per node that produces a graph output, so a
graph whose outputs come from one node with several outputs (TopK's values
and indices, Split's parts, LayerNormalization's mean) returns that node's
whole tuple instead of the outputs the graph declares, in their order.
"""

import operator


def match_graph_outputs(torch_model, outputs_of, graph_outputs):
    """Rewrite the fx graph's output to one value per graph output name, in
    order, picking from multi-output modules with getitem. outputs_of maps a
    module name to its ONNX output names (see locate.mappings). Returns True
    when the graph was changed."""
    producer = {}
    for module, names in outputs_of.items():
        for index, name in enumerate(names):
            if name:
                producer[name] = (module, index, len(names))
    if any(name not in producer for name in graph_outputs):
        return False  # an output no module makes (an input passed through): leave it
    if all(producer[name][2] == 1 for name in graph_outputs):
        return False
    graph = torch_model.graph
    nodes = {n.target: n for n in graph.nodes if n.op == "call_module"}
    output = next(n for n in graph.nodes if n.op == "output")
    values = []
    with graph.inserting_before(output):
        for name in graph_outputs:
            module, index, count = producer[name]
            node = nodes[module]
            values.append(graph.call_function(operator.getitem, (node, index)) if count > 1 else node)
    output.args = (tuple(values) if len(values) > 1 else values[0],)
    graph.eliminate_dead_code()
    torch_model.recompile()
    return True
