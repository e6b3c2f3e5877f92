"""`ssdconvert export`: PyTorch checkpoint -> validated dynamic-batch ONNX."""

from __future__ import annotations

from pathlib import Path

import click

from ssdconvert.cli.options import canvas_option, finite_float, model_option, weights_options


@click.command("export")
@model_option
@weights_options
@click.option("--output", "-o", type=click.Path(dir_okay=False), default=None,
              help="ONNX file to write [default: <model>_bs<bs>.onnx]. The split variant writes <name>_dense.onnx, "
                   "<name>_head.onnx and <name>.composite.json (what infer, bench and the compilers take).")
@click.option("--bs", default=1, show_default=True, type=click.IntRange(min=1),
              help="Batch size traced and validated (validation also runs at batch 1).")
@click.option("--opset", default=None, type=click.IntRange(11, 17),
              help="ONNX opset [default: 11, what older CANN ATC accepts; faster-rcnn-r101-fpn 16, the first "
                   "whose RoiAlign states its coordinate mode].")
@canvas_option
@click.option("--variant", default=None, metavar="NAME",
              help="faster-rcnn-r101-fpn: fixed (default: one graph with NMS and RoiAlign on the device) or split "
                   "(dense model + box-head model, proposal selection and RoIAlign on the host).")
@click.option("--static-batch", is_flag=True, help="Fix the batch axis to --bs instead of making it dynamic.")
@click.option("--simplify/--no-simplify", default=True, show_default=True, help="Simplify with onnxslim.")
@click.option("--half", is_flag=True,
              help="Write an FP16 ONNX: the validated FP32 graph (BN folded) with weights, input and outputs "
                   "rounded to float16. Validated against FP32 PyTorch at the looser FP16 tolerance.")
@click.option("--atol", type=finite_float(), default=None,
              help="Absolute tolerance against PyTorch [default: 1e-4; with --half 1e-3]. For models validated on "
                   "detections (faster-rcnn-r101-fpn) the score tolerance.")
@click.option("--rtol", type=finite_float(), default=None,
              help="Tolerance relative to each output's max |value|: an output passes if max abs diff <= "
                   "atol + rtol * max|torch| [default: 0; with --half 5e-3].")
def export(model_name, checkpoint, backbone, trust_checkpoint, seed, output, bs, opset, canvas, variant, static_batch,
           simplify, half, atol, rtol):
    """Export a detector to ONNX and validate it against PyTorch.

    SSD families: input `image`, raw head outputs, compared element by element. faster-rcnn-r101-fpn:
    inputs `images` and `im_info` (each image's unpadded height, width), outputs boxes, scores,
    labels, num_detections (100 per image); validated on synthetic images by matching detections
    with the PyTorch reference path. --canvas exact: batch 1 with dynamic height and width (each image
    padded to its own multiple of 32, the reference at batch 1), validated on two image sizes.
    ssd-mobilenet-v2-fpnlite: the source is an ONNX file (--checkpoint model.onnx, default the vendored
    ST release), checked against the declared graph, dequantized when it is a QDQ release and
    validated against that source graph on ONNX Runtime.

    \b
    Examples:
      ssdconvert export --checkpoint iter_183250.pt --backbone resnet34-333f7ec4.pth \\
          --bs 16 --output build/ssd_resnet34_bs16.onnx
      ssdconvert export --model ssd-resnet50 --checkpoint last.pt --half --bs 32
      ssdconvert export --model faster-rcnn-r101-fpn --checkpoint e2e_faster_rcnn_R_101_FPN_1x.pth \\
          --canvas 1344x1344 --bs 2 --output build/frcnn.onnx
      ssdconvert export --model faster-rcnn-r101-fpn --variant split --canvas 800x1344 --output build/frcnn
      ssdconvert export --model faster-rcnn-r101-fpn --canvas exact --output build/frcnn_exact.onnx
      ssdconvert export --model ssd-mobilenet-v2-fpnlite --checkpoint release.onnx --bs 8 --output build/st.onnx
    """
    from ssdconvert.checkpoints import build_model
    from ssdconvert.errors import Interrupted
    from ssdconvert.export import export_model
    from ssdconvert.state import remember
    from ssdconvert.zoo import get_spec

    spec = get_spec(model_name).with_canvas(canvas)
    precision = "fp16" if half else "fp32"
    suffix = "_fp16" if half else ""
    output = Path(output or f"{spec.name.replace('-', '_')}_bs{bs}{suffix}.onnx")
    try:
        model, weights = build_model(spec, checkpoint, backbone=backbone, trust=trust_checkpoint, seed=seed)
        what = ", ".join(filter(None, [variant, "fp16" if half else "", f"opset {opset}" if opset else ""]))
        click.echo(f"exporting {spec.name} to {output} ({what + ', ' if what else ''}traced at batch {bs}) ...",
                   err=True)
        result = export_model(model, spec, output, weights=weights, batch=bs, opset=opset, variant=variant,
                              dynamic_batch=not static_batch, simplify_model=simplify, atol=atol, rtol=rtol,
                              precision=precision)
    except KeyboardInterrupt:  # the export is one step: nothing of it was kept, so a re-run starts it over
        raise Interrupted(f"interrupted: nothing was written to {output.parent} (no partial file is left); run "
                          "the same command again to export") from None
    remember("onnx", result.onnx_path)
    lines = result.summary_lines()
    click.echo(lines[0])
    click.echo(f"weights: {weights.label()}")
    for line in lines[1:]:
        click.echo(line)
    click.echo(result.verdict())


COMMANDS = [export]
