"""`ssdconvert export`: PyTorch checkpoint -> validated dynamic-batch ONNX."""

from __future__ import annotations

from pathlib import Path

import click

from ssdconvert.cli.options import model_option, weights_options
from ssdconvert.cli.output import format_table


@click.command("export")
@model_option
@weights_options
@click.option("--output", "-o", type=click.Path(dir_okay=False), default=None,
              help="ONNX file to write [default: <model>_bs<bs>.onnx].")
@click.option("--bs", default=1, show_default=True, type=click.IntRange(min=1),
              help="Batch size traced and validated (validation also runs at batch 1).")
@click.option("--opset", default=11, show_default=True, type=click.IntRange(11, 17),
              help="ONNX opset (11 is what older CANN ATC accepts).")
@click.option("--static-batch", is_flag=True, help="Fix the batch axis to --bs instead of making it dynamic.")
@click.option("--simplify/--no-simplify", default=True, show_default=True, help="Simplify with onnxslim.")
@click.option("--atol", default=1e-4, show_default=True, help="Max abs difference allowed against PyTorch.")
def export(model_name, checkpoint, backbone, trust_checkpoint, seed, output, bs, opset, static_batch, simplify, atol):
    """Export a detector to ONNX (input `image`, outputs `ploc`, `plabel`) and validate it.

    \b
    Example:
      ssdconvert export --checkpoint iter_183250.pt --backbone resnet34-333f7ec4.pth \\
          --bs 16 --output build/ssd_resnet34_bs16.onnx
    """
    from ssdconvert.checkpoints import build_model
    from ssdconvert.export import export_onnx
    from ssdconvert.state import remember
    from ssdconvert.zoo import get_spec

    spec = get_spec(model_name)
    output = Path(output or f"{spec.name.replace('-', '_')}_bs{bs}.onnx")
    model, weights = build_model(spec, checkpoint, backbone=backbone, trust=trust_checkpoint, seed=seed)
    click.echo(f"exporting {spec.name} to {output} (opset {opset}, traced at batch {bs}) ...", err=True)
    result = export_onnx(model, spec, output, weights=weights, batch=bs, opset=opset,
                         dynamic_batch=not static_batch, simplify_model=simplify, atol=atol)
    remember("onnx", result.onnx_path)
    shape = "static batch " + str(bs) if static_batch else "dynamic batch"
    simplified = (f"{result.simplifier} {result.nodes_before} -> {result.nodes_after} nodes"
                  if result.simplifier else "not simplified")
    click.echo(f"wrote {result.onnx_path} ({shape}, opset {opset}, {simplified}, {result.seconds:.1f} s)")
    click.echo(f"weights: {weights.label()}")
    click.echo(f"validation against PyTorch (ONNX Runtime CPU, atol {atol:g}):")
    rows = [(d.batch, d.output, f"{d.max_abs:.3g}", f"{d.max_rel:.3g}") for d in result.validation.diffs]
    click.echo(format_table(["batch", "output", "max abs", "max rel"], rows))
    click.echo(f"PASSED (max abs diff {result.validation.max_abs:.3g}); details in {result.sidecar_path}")


COMMANDS = [export]
