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
    """An exported detector's detections differ from the PyTorch reference's (compared box by box); `output` names
    the output whose values differ (None: the detections themselves, unpaired)."""

    def __init__(self, runtime: str, batch: int, what: str, output: str | None = None):
        self.runtime, self.batch, self.what, self.output = runtime, batch, what, output
        where = f"output '{output}': " if output else ""
        super().__init__(f"{runtime} detections differ from the PyTorch reference at batch {batch}: {where}{what}")


class NonFiniteOutputError(ExportError):
    """An output of PyTorch or of the exported model holds NaN or inf: nothing can be compared."""

    def __init__(self, output: str, batch: int, source: str, count: int, total: int):
        self.output, self.batch, self.source, self.count = output, batch, source, count
        hint = ("the PyTorch model itself computes them on the validation input: check the checkpoint's weights"
                if source.startswith("PyTorch") else "PyTorch's are finite: the exported graph computes something else")
        super().__init__(f"output '{output}' of {source} has {count} of {total} values not finite (NaN or inf) at "
                         f"batch {batch}: {hint}")


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM) stopped a command. Its message says what is kept and how to resume; the CLI
    prints it as one `Error:` line with exit code 130. A KeyboardInterrupt, so no `except Exception`
    (nor `except SsdConvertError`) swallows it on the way out."""

    exit_code = 130
