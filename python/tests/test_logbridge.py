import logging
import sys
import warnings

import pytest

from onnx2pt_py import logbridge


@pytest.fixture
def restore():
    saved = sys.stdout, sys.stderr, warnings.showwarning, logging.getLogger().handlers[:], logging.getLogger().level
    yield
    sys.stdout, sys.stderr, warnings.showwarning = saved[:3]
    logging.getLogger().handlers = saved[3]
    logging.getLogger().setLevel(saved[4])


def test_prints_warnings_and_logs_become_records(restore):
    # Installed inside the test: pytest resets sys.stdout between phases.
    bridge = logbridge
    bridge.install()
    bridge.drain()
    print("hello\nworld", end="")
    print("!", file=sys.stderr)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("careful", UserWarning, stacklevel=1)
    logging.getLogger("onnx2torch").debug("not at info")
    logging.getLogger("onnx2torch").error("bad %s", "thing")
    records = bridge.drain()
    assert [(r["level"], r["source"], r["message"].split(" (")[0]) for r in records] == [
        ("info", "python.stdout", "hello"),
        ("warning", "python.stderr", "!"),
        ("warning", "py.warnings", "UserWarning: careful"),
        ("error", "onnx2torch", "bad thing"),
        ("info", "python.stdout", "world"),  # the unfinished line, flushed by drain
    ]
    assert bridge.drain() == []
