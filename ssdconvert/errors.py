"""Errors a user can fix: the CLI prints their message on one line and exits non-zero."""


class SsdConvertError(Exception):
    """Base for every error caused by the user's input or environment."""


class UnknownModelError(SsdConvertError):
    """The requested model name is not in the zoo."""


class CheckpointError(SsdConvertError):
    """A checkpoint file cannot be read or does not fit the model."""


class ExportError(SsdConvertError):
    """ONNX export failed or produced a model that does not validate."""


class OutputMismatchError(ExportError):
    """An exported output differs from PyTorch by more than the tolerance."""

    def __init__(self, output: str, batch: int, max_abs: float, atol: float, detail: str | None = None):
        self.output, self.batch, self.max_abs, self.atol = output, batch, max_abs, atol
        detail = detail or f"max abs diff {max_abs:.3g} > tolerance {atol:.3g}"
        super().__init__(f"output '{output}' differs from PyTorch at batch {batch}: {detail}")


class DetectionMismatchError(ExportError):
    """An exported detector's detections differ from the PyTorch reference's (compared box by box)."""

    def __init__(self, runtime: str, batch: int, what: str):
        self.runtime, self.batch, self.what = runtime, batch, what
        super().__init__(f"{runtime} detections differ from the PyTorch reference at batch {batch}: {what}")


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM) stopped a command. Its message says what is kept and how to resume; the CLI
    prints it as one `Error:` line with exit code 130. A KeyboardInterrupt, so no `except Exception`
    (nor `except SsdConvertError`) swallows it on the way out."""

    exit_code = 130
