"""Errors of the stage files that a user can fix."""


class LayoutError(Exception):
    """Files on disk that do not fit the results layout: missing, unknown, mixed or of the wrong size."""
