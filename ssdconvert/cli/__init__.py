"""The `ssdconvert` command: a thin click layer. Each stage's command lives in its own module."""

from __future__ import annotations

import importlib
import logging
import signal

import click

from ssdconvert import __version__

# Command name -> the module under ssdconvert/cli/ that defines it (in its COMMANDS list). A command's
# module is imported only when that command runs, so `ssdconvert preprocess` does not pay for the
# backends that `infer` and the compilers import. Each backend's own commands (its compiler: `atc`,
# `cnnl`, `openvino`) come from the backend registry (cli/compile.py).
COMMAND_MODULES = {
    "models": "models", "synth": "synth", "export": "export", "run": "run", "prepare-json": "preprocess",
    "preprocess": "preprocess", "infer": "infer", "bench": "bench", "quantize": "quantize", "compare": "compare",
    "doctor": "doctor", "eval": "eval",
    "dequantize": "dequantize",
}


def user_errors() -> tuple[type[Exception], ...]:
    """Exception types whose message is the whole story for the user (no traceback)."""
    from postprocess.errors import PostprocessError
    from preprocess.errors import PreprocessError
    from ssdconvert.errors import SsdConvertError
    from stageio.errors import LayoutError

    return (SsdConvertError, PreprocessError, PostprocessError, LayoutError)


class StageGroup(click.Group):
    """Loads each command's module on first use, and turns user errors from any stage into a one-line
    message and exit code 1."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        from ssdconvert.cli.compile import backend_commands

        return sorted([*COMMAND_MODULES, *backend_commands()])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMAND_MODULES:
            from ssdconvert.cli.compile import backend_commands

            return backend_commands().get(name)
        module = importlib.import_module(f"ssdconvert.cli.{COMMAND_MODULES[name]}")
        return next(c for c in module.COMMANDS if c.name == name)

    def invoke(self, ctx: click.Context):
        from ssdconvert.errors import Interrupted

        try:
            return super().invoke(ctx)
        except user_errors() as exc:
            raise click.ClickException(str(exc)) from None
        except KeyboardInterrupt as exc:  # Ctrl-C, or `kill` (see _terminated): exit 130, as a shell reports it
            error = click.ClickException(str(exc) if isinstance(exc, Interrupted) and str(exc)
                                         else "interrupted by the user")
            error.exit_code = Interrupted.exit_code
            raise error from None


@click.group(cls=StageGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="ssdconvert")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
def cli(verbose: int) -> None:
    """Convert, validate and benchmark SSD-family detectors for Ascend, Cambricon and CPU.

    Pipeline: prepare-json -> preprocess -> export -> atc/cnnl/openvino -> infer -> eval -> bench.
    """
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


def _terminated(signum: int, frame: object) -> None:
    """`kill PID` is handled like Ctrl-C: finished work is kept and the message says how to resume."""
    raise KeyboardInterrupt


def main() -> None:
    signal.signal(signal.SIGTERM, _terminated)
    cli(prog_name="ssdconvert")
