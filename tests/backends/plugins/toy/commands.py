"""The toy's compiler command: `ssdconvert toy`."""

from __future__ import annotations

from pathlib import Path

import click

from ssdconvert.backends.commands import onnx_option, pick_onnx


@click.command("toy")
@onnx_option
@click.option("--toy-arch", "arch", type=click.Choice(("toy-a", "toy-b")), default="toy-a", show_default=True,
              help="The toy architecture to build for.")
@click.option("--precision", type=click.Choice(("fp32", "int8")), default="fp32", show_default=True)
@click.option("--calib", type=click.Path(exists=True, file_okay=False), default=None,
              help="With --precision int8: the preprocessed bins to calibrate on.")
@click.option("--output", "-o", type=click.Path(file_okay=False), default=None,
              help="Folder for the model, <onnx stem>_<arch>[_int8].toy [default: beside the ONNX].")
def toy(onnx_path, arch, precision, calib, output):
    """Build a .toy model from the ONNX."""
    from . import BACKEND

    onnx = pick_onnx(onnx_path)
    built = BACKEND.configured(arch=arch).build(onnx, Path(output) if output else onnx.parent, batch=1,
                                                 precision=precision, calib=Path(calib) if calib else None)
    click.echo(f"wrote {built[0]} for {arch}")
