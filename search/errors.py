"""The exceptions the CLI turns into exit codes.

`UserError` (bad input from the user) is printed as a single line and exits with status 2;
`SearchInterrupted` (Ctrl-C or SIGTERM, state saved) exits with 130. Everything else is a bug and
keeps its traceback.
"""


class UserError(Exception):
    """Bad input from the user: a path, a flag, a space file, a best.yaml."""


class SearchInterrupted(Exception):
    """The search was stopped by a signal after saving its state; `search resume` continues it."""
