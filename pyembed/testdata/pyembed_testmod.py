"""Stdlib-only helpers that pyembed's Go tests call into."""

import os
import sys


class CustomError(Exception):
    pass


class Box:
    def __init__(self, value):
        self.value = value

    def double(self):
        return self.value * 2


def echo(*args, **kwargs):
    """Return what was passed, so tests can check both directions of conversion."""
    if kwargs:
        return {"args": list(args), "kwargs": kwargs}
    return args[0] if len(args) == 1 else args


def fail(message):
    raise ValueError(message)


def fail_custom(message):
    raise CustomError(message)


def refcount(obj):
    # One reference is the argument itself, one is getrefcount's own.
    return sys.getrefcount(obj)


def unconvertible():
    return object()


def huge():
    return 2**80


def nested(depth):
    value = []
    for _ in range(depth):
        value = [value]
    return value


def spin(seconds):
    """Run Python bytecode for up to seconds; return how long it ran."""
    import time

    start = time.monotonic()
    while time.monotonic() - start < seconds:
        pass
    return time.monotonic() - start


def fail_fsdecode(raw):
    raise ValueError(os.fsdecode(raw))


def fail_surrogate():
    # A lone surrogate that no bytes decode to: str() of the error cannot be
    # encoded as UTF-8, even with surrogateescape.
    raise ValueError("bad \ud800")


def lone_surrogate():
    return "bad \ud800"


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


def list_dir(path):
    return sorted(os.listdir(path))


def fsencode(path):
    return os.fsencode(path)


class _Dtype:
    def __init__(self, kind):
        self.kind = kind


class NumpyLike:
    """Looks like a numpy scalar (or an array when ndim > 0) to pyembed,
    which recognises numpy by the type's module, so that decoding is tested
    where numpy is not installed."""

    __module__ = "numpy"

    def __init__(self, kind, value, ndim=0):
        self.dtype = _Dtype(kind)
        self.value = value
        self.ndim = ndim

    def item(self):
        return self.value

    def __float__(self):
        return float(self.value)


class NumberLike:
    """Has the number protocol but is not numpy: not decoded."""

    def __index__(self):
        return 1

    def __float__(self):
        return 1.0
