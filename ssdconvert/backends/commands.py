"""What every backend's own click command shares (its compiler: `atc`, `cnnl`, `openvino`).

A backend declares its commands in `backends/<name>/commands.py` (Backend.commands); they use these
pieces: --onnx (default: the ONNX the last export wrote), --tool/--timeout/--dry-run/--quiet, integer
lists, --extra split into words, the report of a build, and a composite model built part by part
(composite.build_parts). Only the CLI loads a backend's commands, so the library never imports click
code through here.
"""

from __future__ import annotations

import math
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import click

if TYPE_CHECKING:
    from ssdconvert.backends.base import Backend
    from ssdconvert.backends.compiling import CompileResult


def int_list(text: str, option: str) -> list[int]:
    """'1,4, 8' -> [1, 4, 8]; every item must be a positive integer ('1,,4' and '4,' are refused)."""
    items = [item.strip() for item in text.split(",")]
    bad = [item for item in items if not item.isdigit() or int(item) < 1]
    if bad:
        shown = ", ".join(repr(b) for b in bad[:3])
        raise click.BadParameter(f"expected comma-separated positive integers, got {text!r} ({shown} is not one)",
                                 param_hint=option)
    return [int(item) for item in items]


class FiniteFloat(click.FloatRange):
    """A float option that refuses nan and inf (click's FloatRange lets NaN through every bound: a NaN
    duration then loops for ever); bounds as FloatRange's. The one float type of every command."""

    name = "float"

    def convert(self, value, param, ctx):
        number = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return super().convert(number, param, ctx)


def batch_sizes(ctx: click.Context, param: click.Parameter, value: str | None) -> tuple[int, ...] | None:
    """click callback for batch-size lists (None stays None: the option was not given)."""
    return None if value is None else tuple(int_list(value, param.opts[0]))


def tool_options(default_timeout: int,
                 tool_help: str = "The tool's executable (default: PATH, then the vendor install env)."):
    """--tool, --timeout, --dry-run, --quiet: shared by every compiler command."""

    def decorate(func):
        func = click.option("--quiet", "-q", is_flag=True,
                            help="Do not echo the tool's output (it is still in the log file).")(func)
        func = click.option("--dry-run", is_flag=True,
                            help="Print the exact command line and run nothing.")(func)
        func = click.option("--timeout", default=default_timeout, show_default=True, type=FiniteFloat(min=1),
                            help="Seconds before the tool is killed.")(func)
        func = click.option("--tool", type=click.Path(), default=None, help=tool_help)(func)
        return func

    return decorate


onnx_option = click.option(
    "--onnx", "onnx_path", type=click.Path(dir_okay=False), default=None,
    help="ONNX to compile [default: the file the last `ssdconvert export` in this directory wrote].")


def pick_onnx(onnx_path: str | None) -> Path:
    """--onnx, or the ONNX the last export wrote (and say which file that is)."""
    from ssdconvert.errors import SsdConvertError
    from ssdconvert.state import STATE_FILE, recall

    if onnx_path:
        return Path(onnx_path)
    remembered = recall("onnx")
    if remembered is None:
        raise SsdConvertError(f"no --onnx given and no earlier `ssdconvert export` recorded in ./{STATE_FILE}; "
                              "run `make onnx` (or `ssdconvert export`) first, or pass --onnx")
    if not remembered.is_file():
        raise SsdConvertError(f"the last export wrote {remembered}, which no longer exists; pass --onnx")
    click.echo(f"using {remembered} (the ONNX the last `ssdconvert export` wrote)", err=True)
    return remembered


def progress(quiet: bool) -> Callable[[str], None] | None:
    """Where the tool's output is echoed as it runs (stderr), or None with --quiet."""
    if quiet:
        return None

    def echo(text: str) -> None:
        sys.stderr.write(text)
        sys.stderr.flush()

    return echo


def split_extra(extra: tuple[str, ...]) -> list[str]:
    """--extra values (each a shell-quoted string of flags) as one list of words."""
    items: list[str] = []
    for chunk in extra:
        items += shlex.split(chunk)
    return items


def _size(path: Path) -> str:
    size = path.stat().st_size
    return f"{size / 1e6:.1f} MB" if size >= 1e5 else f"{size} B"


def report(result: CompileResult, summary: str) -> None:
    if result.dry_run:
        click.echo(result.command_line)
        click.echo(f"dry run: nothing was run; it would write {result.primary} and log to {result.log_path}",
                   err=True)
        return
    files = " + ".join(f"{p} ({_size(p)})" for p in result.artefacts)
    click.echo(f"wrote {files} in {result.seconds:.1f} s")
    click.echo(f"  {summary}")
    click.echo(f"  command: {result.command_line}")
    click.echo(f"  log:     {result.log_path}")
    if result.sidecar:
        click.echo(f"  record:  {result.sidecar}")


Build = Callable[[Path, "int | None", "str | None"], "CompileResult"]


def build_all(backend: Backend, onnx: Path, batch: int | None, output: str | None, build: Build,
              describe: Callable[[CompileResult], str], dry_run: bool) -> None:
    """Build `onnx` with `build(onnx, batch, output) -> CompileResult` and report it. A composite model
    (<name>.composite.json: a split variant) gets every part built beside it at rows_per_image x the batch,
    and a descriptor of the built parts (composite.built_name), which infer and bench take as one model."""
    from ssdconvert.backends import composite
    from ssdconvert.errors import SsdConvertError

    if not composite.is_composite(onnx):
        result = build(onnx, batch, output)
        report(result, describe(result))
        return
    if output:
        raise SsdConvertError("a composite model is built beside its parts: leave out --output")

    def build_part(part: composite.Part, part_batch: int | None) -> Path:
        click.echo(f"part {part.name} ({part.path.name}, {part.rows_per_image} row(s) per image):", err=True)
        result = build(part.path, part_batch, None)
        report(result, describe(result))
        return result.primary

    target = composite.build_parts(composite.read(onnx), onnx.parent, backend.build_tag, batch, build_part,
                                   dry_run=dry_run)
    if not dry_run:
        click.echo(f"wrote {target} (run it with infer/bench like one model)")
