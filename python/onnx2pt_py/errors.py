class UserError(Exception):
    """A problem with the user's input, reported without a traceback.

    The Go host shows str() of it as the one-line error; everything else that
    escapes from this package is a bug or an environment problem and is shown
    with its traceback in verbose logs.
    """


def first_line(error):
    """The first line of an exception's message, or its type's name."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
