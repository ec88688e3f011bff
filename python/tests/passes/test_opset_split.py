"""Split-18 with num_outputs taken down to Split-13 and Split-11: the sizes
written for it are those of Split-18, also where the last parts are short or
empty."""

import numpy as np
import pytest
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator
from pass_helpers import make_model, ort_run, tensor_info

from onnx2pt_py.passes import opset


@pytest.mark.parametrize("target", [11, 13])
@pytest.mark.parametrize(("n", "parts"), [(5, 2), (5, 3), (5, 4), (6, 4), (2, 2), (9, 4)])
def test_split_18_num_outputs_goes_down_with_the_reference_sizes(target, n, parts):
    names = [f"y{i}" for i in range(parts)]
    nodes = [helper.make_node("Split", ["x"], names, axis=1, num_outputs=parts)]
    part = -(-n // parts)
    sizes = [max(0, min(part, n - i * part)) for i in range(parts)]  # 5 in 4: [2, 2, 1, 0]
    outputs = [tensor_info(y, ["N", size, 2]) for y, size in zip(names, sizes)]
    model = make_model(nodes, [tensor_info("x", ["N", n, 2])], outputs, opset=18)

    out = opset.convert(model, target)

    assert out is not None
    (split,) = out.graph.node
    written = [helper.get_attribute_value(a) for a in split.attribute if a.name == "split"]
    if not written and len(split.input) > 1:
        written = [numpy_helper.to_array(i).tolist() for i in out.graph.initializer if i.name == split.input[1]]
    assert written in ([sizes], []) and (written or n % parts == 0)  # none where the axis splits evenly
    x = np.arange(3 * n * 2, dtype=np.float32).reshape(3, n, 2)
    want = ReferenceEvaluator(model).run(None, {"x": x})
    # (onnxruntime refuses Split-18 where ceil(n / parts) sizes overrun the
    # axis, 5 in 4; it runs the sizes written for the older versions.)
    for got in (ReferenceEvaluator(out).run(None, {"x": x}), ort_run(out, {"x": x})):
        assert [g.shape for g in got] == [w.shape for w in want] == [(3, size, 2) for size in sizes]
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w)
