"""`ssdconvert export`: PyTorch checkpoint -> validated dynamic-batch ONNX."""

from __future__ import annotations

from pathlib import Path

import click

from ssdconvert.cli.options import model_option, weights_options
from ssdconvert.formatting import format_table


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
@click.option("--half", is_flag=True,
              help="Write an FP16 ONNX: the validated FP32 graph (BN folded) with weights, input and outputs "
                   "rounded to float16. Validated against FP32 PyTorch at the looser FP16 tolerance.")
@click.option("--atol", type=float, default=None,
              help="Absolute tolerance against PyTorch [default: 1e-4; with --half 1e-3].")
@click.option("--rtol", type=float, default=None,
              help="Tolerance relative to each output's max |value|: an output passes if max abs diff <= "
                   "atol + rtol * max|torch| [default: 0; with --half 5e-3].")
def export(model_name, checkpoint, backbone, trust_checkpoint, seed, output, bs, opset, static_batch, simplify,
           half, atol, rtol):
    """Export a detector to ONNX (input `image`, outputs `ploc`, `plabel`) and validate it.

    \b
    Examples:
      ssdconvert export --checkpoint iter_183250.pt --backbone resnet34-333f7ec4.pth \\
          --bs 16 --output build/ssd_resnet34_bs16.onnx
      ssdconvert export --model ssd-resnet50 --checkpoint last.pt --half --bs 32
    """
    from ssdconvert.checkpoints import build_model
    from ssdconvert.export import NOISE_FACTOR, export_onnx
    from ssdconvert.state import remember
    from ssdconvert.zoo import get_spec

    spec = get_spec(model_name)
    precision = "fp16" if half else "fp32"
    suffix = "_fp16" if half else ""
    output = Path(output or f"{spec.name.replace('-', '_')}_bs{bs}{suffix}.onnx")
    model, weights = build_model(spec, checkpoint, backbone=backbone, trust=trust_checkpoint, seed=seed)
    what = f"fp16, opset {opset}" if half else f"opset {opset}"
    click.echo(f"exporting {spec.name} to {output} ({what}, traced at batch {bs}) ...", err=True)
    result = export_onnx(model, spec, output, weights=weights, batch=bs, opset=opset,
                         dynamic_batch=not static_batch, simplify_model=simplify, atol=atol, rtol=rtol,
                         precision=precision)
    remember("onnx", result.onnx_path)
    report = result.validation
    shape = "static batch " + str(bs) if static_batch else "dynamic batch"
    simplified = (f"{result.simplifier} {result.nodes_before} -> {result.nodes_after} nodes"
                  if result.simplifier else "not simplified")
    click.echo(f"wrote {result.onnx_path} ({shape}, opset {opset}, {simplified}, {result.seconds:.1f} s)")
    if half:
        click.echo("precision: fp16 (weights, input `image` and outputs are float16; feed float16 tensors)")
    click.echo(f"weights: {weights.label()}")
    if report.rtol:
        click.echo(f"validation against FP32 PyTorch (ONNX Runtime CPU, max abs <= {report.atol:g} + "
                   f"{report.rtol:g} * max|torch|):")
        rows = [(d.batch, d.output, f"{d.max_abs:.3g}", f"{report.limit(d):.3g}") for d in report.diffs]
        click.echo(format_table(["batch", "output", "max abs", "tolerance"], rows))
    else:
        click.echo(f"validation against PyTorch (ONNX Runtime CPU, atol {report.atol:g}):")
        rows = [(d.batch, d.output, f"{d.max_abs:.3g}", f"{d.max_rel:.3g}") for d in report.diffs]
        click.echo(format_table(["batch", "output", "max abs", "max rel"], rows))
        for d in (d for d in report.diffs if d.float64):
            f = d.float64
            click.echo(f"  batch {d.batch} {d.output}: beyond atol, so judged against a float64 run: error "
                       f"{f.onnx_error:.3g} <= {f.limit:.3g} (atol + {NOISE_FACTOR:g} x PyTorch float32's own "
                       f"error {f.torch_error:.3g})")
    click.echo(f"PASSED (max abs diff {report.max_abs:.3g}); details in {result.sidecar_path}")


COMMANDS = [export]
