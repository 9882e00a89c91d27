"""The one exception type for user mistakes.

Anything raised as `UserError` is printed by the CLI as a single line and exits with status 2;
everything else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """Bad input from the user: a path, a flag, a space file, a best.yaml."""
