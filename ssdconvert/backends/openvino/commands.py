"""OpenVINO's command line: `ssdconvert openvino` (ovc, or NNCF INT8)."""

from __future__ import annotations

from pathlib import Path

import click

from ssdconvert.backends.commands import build_all, onnx_option, pick_onnx, progress, tool_options


def _describe(result) -> str:
    i = result.info
    batch = "dynamic batch" if i["dynamic_batch"] else f"batch {i['batch']}"
    return f"{i['weights']} weights, {i['precision']} inference, {batch}, input " + ", ".join(
        f"{x['name']}[{','.join(map(str, x['shape']))}]" for x in i["inputs"])


def _int8(onnx: Path, calib: str, output: str | None) -> None:
    """`ssdconvert quantize --backend openvino`: NNCF INT8 calibrated on `calib`, held to the accuracy gate."""
    from ssdconvert.backends import composite
    from ssdconvert.backends.openvino import BACKEND
    from ssdconvert.cpu import cpu_features
    from ssdconvert.errors import SsdConvertError
    from ssdconvert.quantize import quantize_model

    if composite.is_composite(onnx):
        raise SsdConvertError("--precision int8 takes one ONNX model: the parts of a composite have no "
                              "preprocessed bins of their own to calibrate on")
    click.echo(f"CPU: {cpu_features().describe()}", err=True)
    xml = str(Path(output).with_suffix(".xml")) if output else None
    result = quantize_model(onnx, calib, xml, backend=BACKEND, say=lambda s: click.echo(s, err=True))
    click.echo("\n".join(result.lines()))
    result.check_passed()


@click.command("openvino")
@onnx_option
@click.option("--output", "-o", default=None,
              help="IR path without .xml, or a directory/ [default: beside the ONNX, same name].")
@click.option("--bs", type=click.IntRange(min=1), default=None, help="Fix the batch [default: keep it dynamic].")
@click.option("--fp16", is_flag=True, help="Compress weights to FP16 (ovc's own default); FP32 otherwise.")
@click.option("--precision", type=click.Choice(["fp32", "fp16", "bf16", "int8"]), default="fp32", show_default=True,
              help="Inference precision recorded for the runner (CPU INFERENCE_PRECISION_HINT f32/f16/bf16; fp16 "
                   "also compresses the weights); int8 quantizes with NNCF on --calib and runs the accuracy gate.")
@click.option("--calib", type=click.Path(exists=True, file_okay=False), default=None,
              help="With --precision int8: the preprocessed bins folder to calibrate on (300 images, as `quantize`).")
@tool_options(default_timeout=1800)
def openvino(onnx_path, output, bs, fp16, precision, calib, tool, timeout, dry_run, quiet):
    """Convert the ONNX to OpenVINO IR (.xml + .bin) with the `ovc` tool.

    FP32 weights unless --fp16 (ovc itself defaults to FP16). Writes <output>.xml, <output>.bin,
    <output>.ovc.log and <output>.xml.json (the build record, with the inference precision the
    runner then asks the CPU for: on a CPU with AVX512_BF16 OpenVINO would otherwise compute in
    bf16 even for an FP32 IR). --precision bf16 and fp16 are refused on a CPU that cannot compute
    them natively (OpenVINO's OPTIMIZATION_CAPABILITIES lack BF16 / FP16): it would compute
    another precision under that name.
    --precision int8 is `ssdconvert quantize --backend openvino` (NNCF, accuracy gate).

    \b
    Examples:
      ssdconvert openvino --onnx build/ssd_resnet34_bs16.onnx --output build/ssd   # dynamic batch, FP32
      ssdconvert openvino --bs 16 --fp16                     # last exported ONNX, static batch, FP16 weights
      ssdconvert openvino --precision bf16 --output build/ssd_bf16
      ssdconvert openvino --precision int8 --calib build/ssd_bin --output build/ssd_int8
    """
    from ssdconvert.backends.openvino import BACKEND
    from ssdconvert.backends.openvino.compile import convert_ir
    from ssdconvert.errors import SsdConvertError

    onnx = pick_onnx(onnx_path)
    if precision == "int8":
        if calib is None:
            raise click.UsageError("--precision int8 needs --calib (the preprocessed bins folder)")
        if bs is not None or fp16 or dry_run:
            raise click.UsageError("--precision int8 keeps the batch dynamic and the weights FP32; "
                                   "--bs, --fp16 and --dry-run do not apply")
        _int8(onnx, calib, output)
        return
    if calib is not None:
        raise SsdConvertError("--calib applies only to --precision int8")
    refused = BACKEND.precision_refusal(precision)
    if refused:
        raise SsdConvertError(refused + ("; --fp16 alone compresses the weights and keeps f32 inference"
                                         if precision == "fp16" else ""))

    def build(model: Path, batch: int | None, out):
        return convert_ir(model, Path(out) if out and not out.endswith("/") else out, batch=batch, fp16=fp16,
                          precision=precision, tool=tool, timeout=timeout, dry_run=dry_run, progress=progress(quiet))

    build_all(BACKEND, onnx, bs, output, build, _describe, dry_run)
