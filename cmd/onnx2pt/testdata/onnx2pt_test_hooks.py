"""Converters that crash or hang a worker, raise when run, or convert one
node wrongly, for the end-to-end tests only.

Workers import this file when the binary is built with the onnx2pt_testhooks
tag and ONNX2PT_TEST_HOOKS names it; models use the ops from the
"onnx2pt.test" domain. ONNX2PT_TEST_MUTATION=NAME@OUTPUT breaks the
converter of the node whose first output is OUTPUT as the mutation NAME of
python/tools/mutations.py does, for the worker's whole life.
"""

import ctypes
import os
import sys

from onnx2torch.node_converters.registry import add_converter
from onnx2torch.utils.common import OperationConverterResult, onnx_mapping_from_node
from torch import nn

DOMAIN = "onnx2pt.test"


@add_converter(operation_type="Abort", version=1, domain=DOMAIN)
def abort(node, graph):
    os.abort()


@add_converter(operation_type="Hang", version=1, domain=DOMAIN)
def hang(node, graph):
    # One long native call: Python's own interrupt cannot stop it.
    ctypes.CDLL(None).sleep(600)


class _Raising(nn.Module):
    def forward(self, x):
        raise RuntimeError("raised by the test hooks")


@add_converter(operation_type="Raise", version=1, domain=DOMAIN)
def raise_when_run(node, graph):
    # Converts; the converted module raises a plain Python error when run.
    return OperationConverterResult(torch_module=_Raising(), onnx_mapping=onnx_mapping_from_node(node))


if os.environ.get("ONNX2PT_TEST_MUTATION"):
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "python", "tools"))
    import mutations

    _name, _target = os.environ["ONNX2PT_TEST_MUTATION"].split("@", 1)
    mutations.install(mutations.BY_NAME[_name], _target)
