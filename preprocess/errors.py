"""Errors of the preprocess stage that a user can fix."""


class PreprocessError(Exception):
    """Bad annotation file, data root or output directory."""


class ImageFailure(Exception):
    """One image cannot be used (unreadable, refused path, duplicate stem); the message is the reason.

    Reported per image and listed in the manifest; the run carries on with the other images.
    """
