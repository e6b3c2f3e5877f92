"""Errors of the postprocess/eval stage that a user can fix."""


class PostprocessError(Exception):
    """Missing or malformed result files, manifest or annotations."""
