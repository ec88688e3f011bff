"""Converters that crash or hang a worker, for the end-to-end tests only.

Workers import this file when the binary is built with the onnx2pt_testhooks
tag and ONNX2PT_TEST_HOOKS names it; models use the ops from the
"onnx2pt.test" domain.
"""

import ctypes
import os

from onnx2torch.node_converters.registry import add_converter

DOMAIN = "onnx2pt.test"


@add_converter(operation_type="Abort", version=1, domain=DOMAIN)
def abort(node, graph):
    os.abort()


@add_converter(operation_type="Hang", version=1, domain=DOMAIN)
def hang(node, graph):
    # One long native call: Python's own interrupt cannot stop it.
    ctypes.CDLL(None).sleep(600)
