"""The one error type for what the user can fix.

`UserError` carries a one-line message that names the problem and the fix; a command line prints it and exits 2.
Any other exception is a bug and keeps its traceback. It subclasses ValueError so that code written against
the earlier API (``except ValueError``) still catches bad input.
"""

from __future__ import annotations


class UserError(ValueError):
    """Bad input, settings or files that the user can fix; the message says how."""
