"""Errors a user can cause. The CLI prints them as one line and exits non-zero."""


class NextbestError(Exception):
    """A mistake in the user's input (file, option, configuration), explained in one line."""


class DataError(NextbestError):
    """A data file cannot be used; the message names the file, and the row and column where known."""
