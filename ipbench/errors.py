"""The one exception type for user mistakes.

Anything a user can get wrong (an unknown name, a bad value, an unreadable file) raises `UsageError`
with a one-line message that names the culprit and what would be valid. The CLI turns it into a clean
error and exit code 2; library users can catch it like any ValueError.
"""


class UsageError(ValueError):
    """A user-facing mistake: bad name, bad value, missing file. Message is one line."""


def first_line(exc: BaseException) -> str:
    """'TypeName: first line of the message', for one-line errors that wrap a library's exception."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
