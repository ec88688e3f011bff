"""All passes in order on whole exported models."""

import io
import warnings

import onnx
import onnx2torch
import pytest
import torch
from pass_helpers import assert_matches_ort, assert_same_interface, squeezenet

from onnx2pt_py import passes


def test_legacy_export():
    model = squeezenet()
    before = model.SerializeToString()
    out, report = passes.apply_all(model)
    assert model.SerializeToString() == before
    assert report == {"constants": {"identities_removed": 17}}
    assert_same_interface(model, out)
    assert_matches_ort(model, onnx2torch.convert(out).eval())


class ShuffleBlock(torch.nn.Module):
    """A small shufflenet-like block: chunk, concat, channel shuffle, mean."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(4)
        self.fc = torch.nn.Linear(8, 5)

    def forward(self, x):
        x = torch.relu(self.conv(x))
        a, b = x.chunk(2, dim=1)
        x = torch.cat([self.bn(b), a], 1)
        n, c, h, w = x.shape
        x = x.view(n, 2, c // 2, h, w).transpose(1, 2).reshape(n, c, h, w)
        return self.fc(x.mean((2, 3)))


def test_dynamo_export():
    # torch's default exporter; it needs onnxscript (a dev requirement).
    pytest.importorskip("onnxscript")
    torch.manual_seed(0)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            ShuffleBlock().eval(),
            (torch.randn(1, 3, 8, 8),),
            dynamo=True,
            input_names=["input"],
            output_names=["output"],
            dynamic_shapes={"x": {0: torch.export.Dim("batch", min=1, max=64)}},
            verbose=False,
        )
    program.save(buffer)
    model = onnx.load_from_string(buffer.getvalue())
    # Split-18, ReduceMean-18, Reshape-19 with allowzero=1.
    with pytest.raises(NotImplementedError, match="version=18"):
        onnx2torch.convert(model)

    out, report = passes.apply_all(model)

    # The exporter's default opset depends on the torch release (18 or later).
    assert report["opset"]["opset_from"] >= 18 and report["opset"]["opset_to"] == 17
    assert report["reshape_allowzero"] == {"allowzero_cleared": 2}
    assert_same_interface(model, out)
    assert_matches_ort(model, onnx2torch.convert(out).eval())
