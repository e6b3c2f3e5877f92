"""Ascend's command line: `ssdconvert atc`, and the options it adds to run, bench and infer."""

from __future__ import annotations

from pathlib import Path

import click

from ssdconvert.backends.ascend.compile import LOG_LEVELS, PRECISION_MODES
from ssdconvert.backends.commands import (batch_sizes, build_all, onnx_option, pick_onnx, progress, split_extra,
                                          tool_options)

SOC_RUN_HELP = "Ascend chip for ATC (see `npu-smi info`)."


def generic_options(command: str) -> list[click.Option]:
    """What `run`, `bench` and `infer` take for Ascend, each named by the AscendOptions field it fills."""
    soc_for_bench = click.Option(["--soc", "soc"], default=None,
                                 help="Ascend chip for ATC when --backend ascend gets an .onnx (e.g. Ascend310P3).")
    gears = {
        "bench": "The .om has dynamic batch gears: run each batch size as a gear.",
        "infer": "The .om has dynamic batch gears (atc --dynamic_batch_size): run gear --batchsize via --dymBatch.",
    }
    options = {
        "run": [click.Option(["--soc", "soc"], default="Ascend310P3", show_default=True, help=SOC_RUN_HELP),
                click.Option(["--atc-tool", "tool"], type=click.Path(dir_okay=False), default=None,
                             help="ATC executable [default: PATH, then $ASCEND_TOOLKIT_HOME / $ASCEND_HOME_PATH].")],
        "bench": [soc_for_bench],
    }.get(command, [])
    if command in gears:
        options.append(click.Option(["--dym-batch", "dym_batch"], is_flag=True, help=gears[command]))
    return options


def _describe(result) -> str:
    i = result.info
    batch = f"gears {i['dynamic_batches']}" if i["dynamic_batches"] else f"batch {i['batch']} ({i['batch_source']})"
    inp = i["input"]
    summary = (f"soc {i['soc']}, precision {i['precision']}"
               f"{' (ATC default)' if i['precision_source'] == 'ATC default' else ''}, {batch}, input "
               f"{inp['name']}:{','.join(map(str, inp['shape']))} {inp['dtype']} {inp['layout']}")
    if i["aipp_config"]:
        summary += f"; AIPP config {i['aipp_config']}"
    if len(i["inputs"]) > 1:
        summary += "; inputs " + ", ".join(f"{x['name']}:{','.join(map(str, x['shape']))}" for x in i["inputs"])
    return "\n".join([summary, *(f"  op note: {note}" for note in i["op_notes"])])


@click.command("atc")
@onnx_option
@click.option("--soc", required=True, metavar="SOC",
              help="Target chip as ATC names it: 'Ascend' + the Name column of `npu-smi info` (e.g. Ascend310P3).")
@click.option("--bs", type=click.IntRange(min=1), default=None,
              help="Static batch size [default: the batch the ONNX was exported at].")
@click.option("--dynamic-bs", metavar="1,4,8,16", default=None, callback=batch_sizes,
              help="Batch gears instead of --bs: one .om that runs at each listed batch (2-100 gears).")
@click.option("--precision", type=click.Choice(PRECISION_MODES), default=None, metavar="MODE",
              help="ATC --precision_mode: force_fp32, must_keep_origin_dtype, allow_fp32_to_fp16, "
                   "allow_mix_precision, force_fp16, ... [default: ATC's own, force_fp16].")
@click.option("--aipp", is_flag=True,
              help="Normalise on the device: uint8 RGB HWC input (pairs with `preprocess --dtype uint8`).")
@click.option("--output", "-o", default=None,
              help="Model path without .om [default: beside the ONNX, <name>_bs<N>].")
@click.option("--log", "log_level", type=click.Choice(LOG_LEVELS), default="error", show_default=True,
              help="ATC --log (debug-log level; run logs are always written).")
@click.option("--extra", multiple=True, metavar="'--flag=value ...'",
              help="More ATC flags, passed through as is (repeatable).")
@click.option("--model", "model_name", default=None, metavar="NAME",
              help="Detector from the zoo (see `ssdconvert models`): whose normalisation --aipp folds in, named in "
                   "the build record [default: the model the ONNX's export record <onnx>.json names].")
@tool_options(default_timeout=3600)
def atc(onnx_path, soc, bs, dynamic_bs, precision, aipp, output, log_level, extra, model_name,
        tool, timeout, dry_run, quiet):
    """Compile the ONNX to an Ascend offline model (.om) with Huawei ATC.

    The input name and shape come from the ONNX itself. Writes <output>.om (or
    <output>_<os>_<arch>.om for dynamic-shape graphs), <output>.atc.log with ATC's full output,
    and <om>.json with the command line, soc, precision, batch and the ONNX's sha256.

    \b
    Examples:
      ssdconvert atc --soc Ascend310P3                      # the last exported ONNX, its batch
      ssdconvert atc --onnx build/ssd_resnet34_bs16.onnx --soc Ascend310P3 --bs 16 \\
          --output build/ssd_bs16                           # -> build/ssd_bs16.om
      ssdconvert atc --soc Ascend310P3 --dynamic-bs 1,4,8,16 --precision force_fp32
      ssdconvert atc --soc Ascend310P3 --bs 16 --aipp --extra '--op_select_implmode=high_precision'
      ssdconvert atc --soc Ascend310P3 --bs 16 --dry-run    # print the atc command only
    """
    from ssdconvert.backends import composite
    from ssdconvert.backends.ascend import BACKEND
    from ssdconvert.backends.ascend.compile import build_om
    from ssdconvert.errors import SsdConvertError
    from ssdconvert.zoo import get_spec

    onnx = pick_onnx(onnx_path)
    gears = list(dynamic_bs) if dynamic_bs else None
    if gears and composite.is_composite(onnx):
        raise SsdConvertError("a composite model's parts run at different batches (rows_per_image x the images): "
                              "build it with --bs, one static model set per batch")
    transform = get_spec(model_name).transform if model_name else None

    def build(model: Path, batch: int | None, out):
        return build_om(model, soc, batch=batch, dynamic_batches=gears, precision=precision,
                        output=Path(out) if out else None, aipp=aipp, log_level=log_level, extra=split_extra(extra),
                        tool=tool, timeout=timeout, dry_run=dry_run, model_name=model_name, transform=transform,
                        progress=progress(quiet))

    build_all(BACKEND, onnx, bs or 1 if composite.is_composite(onnx) else bs, output, build, _describe,
              dry_run)
