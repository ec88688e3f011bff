import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


@pytest.fixture(autouse=True)
def onnx2torch_alone(request, monkeypatch):
    """The pass tests (tests/passes) state what the passes do for
    onnx2torch's own converters; onnx2pt's converters, once any test in the
    run imported them, would make some of those models convertible without
    a pass."""
    if os.sep + "passes" + os.sep not in str(request.path):
        return
    from onnx2torch.node_converters import registry

    from onnx2pt_py.converters._common import REGISTERED, REPLACED

    alone = {k: v for k, v in registry._CONVERTER_REGISTRY.items() if k not in REGISTERED}
    alone.update(REPLACED)
    monkeypatch.setattr(registry, "_CONVERTER_REGISTRY", alone)


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: exports or converts a full network")
    config.addinivalue_line(
        "markers",
        "binary_covers: converted end to end by the Go tests too (cmd/onnx2pt TestFamilies, source artifact included), "
        "which `go tool task test` runs; it leaves these out here",
    )
