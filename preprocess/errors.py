"""Errors of the preprocess stage that a user can fix."""


class PreprocessError(Exception):
    """Bad annotation file, data root or output directory."""
