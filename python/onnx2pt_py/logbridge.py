"""Collects what Python code prints, warns and logs, for the Go host to
drain after each call and send into its own log stream.

The host cannot be called back from Python cheaply, so records queue here;
each step is short, and the host drains the queue right after it.
"""

import io
import logging
import sys
import threading
import warnings

_records = []
_lock = threading.Lock()


def _add(level, source, message):
    message = message.rstrip()
    if message:
        with _lock:
            _records.append({"level": level, "source": source, "message": message})


class _LineStream(io.TextIOBase):
    """A text stream that turns each complete line into a record."""

    def __init__(self, source, level):
        super().__init__()
        self.source = source
        self.level = level
        self.partial = ""

    def writable(self):
        return True

    def write(self, text):
        lines = (self.partial + text).split("\n")
        self.partial = lines.pop()
        for line in lines:
            _add(self.level, self.source, line)
        return len(text)

    def flush(self):
        if self.partial:
            _add(self.level, self.source, self.partial)
            self.partial = ""


class _Handler(logging.Handler):
    def emit(self, record):
        try:
            _add(record.levelname.lower(), record.name, self.format(record))
        except Exception:  # a broken log record must not break the conversion
            self.handleError(record)


def _showwarning(message, category, filename, lineno, file=None, line=None):
    _add("warning", "py.warnings", f"{category.__name__}: {message} ({filename}:{lineno})")


def install(level=logging.INFO):
    """Route sys.stdout, sys.stderr, warnings and logging into the queue."""
    sys.stdout = _LineStream("python.stdout", "info")
    sys.stderr = _LineStream("python.stderr", "warning")
    warnings.showwarning = _showwarning
    root = logging.getLogger()
    root.handlers = [_Handler()]
    root.setLevel(level)


def drain():
    """Return and forget the records collected so far."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, _LineStream):
            stream.flush()
    with _lock:
        out = list(_records)
        _records.clear()
    return out
