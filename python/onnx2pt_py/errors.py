class UserError(Exception):
    """A problem with the user's input, reported without a traceback.

    The Go host shows str() of it as the one-line error; everything else that
    escapes from this package is a bug or an environment problem and is shown
    with its traceback in verbose logs.
    """
