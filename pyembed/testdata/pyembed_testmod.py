"""Stdlib-only helpers that pyembed's Go tests call into."""

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
