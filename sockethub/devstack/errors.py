"""The one error type of the local stack: a single line for the user."""


class StackError(Exception):
    """Something the user must act on; ``str(err)`` says what happened and what to do."""
