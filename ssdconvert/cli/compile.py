"""`ssdconvert atc | cnnl (magicmind) | openvino`: ONNX -> device model through the vendor tools."""

from __future__ import annotations

import copy
import shlex
import sys
from pathlib import Path

import click

from ssdconvert.cli.options import batch_sizes, int_list, model_option
from ssdconvert.backends.ascend.compile import LOG_LEVELS, PRECISION_MODES
from ssdconvert.backends.magicmind.compile import MLU_ARCHS, PRECISIONS as MM_PRECISIONS


def tool_options(default_timeout: int):
    """--tool, --timeout, --dry-run, --quiet: shared by every compiler command."""

    def decorate(func):
        func = click.option("--quiet", "-q", is_flag=True,
                            help="Do not echo the tool's output (it is still in the log file).")(func)
        func = click.option("--dry-run", is_flag=True,
                            help="Print the exact command line and run nothing.")(func)
        func = click.option("--timeout", default=default_timeout, show_default=True, type=click.FloatRange(min=1),
                            help="Seconds before the tool is killed.")(func)
        func = click.option("--tool", type=click.Path(), default=None,
                            help="The tool's executable (default: PATH, then the vendor install env).")(func)
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


def _progress(quiet: bool):
    if quiet:
        return None

    def echo(text: str) -> None:
        sys.stderr.write(text)
        sys.stderr.flush()

    return echo


def _size(path: Path) -> str:
    size = path.stat().st_size
    return f"{size / 1e6:.1f} MB" if size >= 1e5 else f"{size} B"


def report(result, summary: str) -> None:
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


def build_all(onnx: Path, batch: int | None, output, tag: str, build, describe, dry_run: bool) -> None:
    """Build `onnx` with `build(onnx, batch, output) -> CompileResult` and report it; a composite model
    (<name>.composite.json: the split variant) gets every part built beside it at rows_per_image x the
    batch, and a descriptor of the built parts, <name>_<tag>.composite.json, which infer and bench take."""
    from ssdconvert.backends import composite
    from ssdconvert.errors import SsdConvertError

    if not composite.is_composite(onnx):
        result = build(onnx, batch, output)
        report(result, describe(result))
        return
    if output:
        raise SsdConvertError("a composite model is built beside its parts: leave out --output")
    parts = composite.read(onnx)
    built = {}
    for part in parts.parts:
        click.echo(f"part {part.name} ({part.path.name}, {part.rows_per_image} row(s) per image):", err=True)
        result = build(part.path, batch * part.rows_per_image if batch else None, None)
        report(result, describe(result))
        built[part.name] = result.primary
    if dry_run:
        return
    stem = onnx.name[:-len(composite.SUFFIX)]
    target = composite.write(onnx.with_name(f"{stem}_{tag}{composite.SUFFIX}"), parts, built)
    click.echo(f"wrote {target} (run it with infer/bench like one model)")


def _split_extra(extra: tuple[str, ...]) -> list[str]:
    items: list[str] = []
    for chunk in extra:
        items += shlex.split(chunk)
    return items


# ---------------------------------------------------------------------------------------- atc


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
@model_option
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
    from ssdconvert.backends.ascend.compile import build_om
    from ssdconvert.errors import SsdConvertError
    from ssdconvert.zoo import get_spec

    onnx = pick_onnx(onnx_path)
    gears = list(dynamic_bs) if dynamic_bs else None
    if gears and composite.is_composite(onnx):
        raise SsdConvertError("a composite model's parts run at different batches (the box head at 1000 x the "
                              "images): build it with --bs, one static model set per batch")

    def build(model: Path, batch: int | None, out):
        return build_om(model, soc, batch=batch, dynamic_batches=gears, precision=precision,
                        output=Path(out) if out else None, aipp=aipp, log_level=log_level, extra=_split_extra(extra),
                        tool=tool, timeout=timeout, dry_run=dry_run, model_name=model_name,
                        transform=get_spec(model_name).transform, progress=_progress(quiet))

    def describe(result) -> str:
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

    build_all(onnx, bs or 1 if composite.is_composite(onnx) else bs, output, f"atc_bs{bs or 1}", build, describe,
              dry_run)


# ----------------------------------------------------------------------------------- openvino


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
    bf16 even for an FP32 IR; a CPU without native FP16 runs f16 as bf16, and says so).
    --precision int8 is `ssdconvert quantize --backend openvino` (NNCF, accuracy gate).

    \b
    Examples:
      ssdconvert openvino --onnx build/ssd_resnet34_bs16.onnx --output build/ssd   # dynamic batch, FP32
      ssdconvert openvino --bs 16 --fp16                     # last exported ONNX, static batch, FP16 weights
      ssdconvert openvino --precision bf16 --output build/ssd_bf16
      ssdconvert openvino --precision int8 --calib build/ssd_bin --output build/ssd_int8
    """
    from ssdconvert.backends import composite
    from ssdconvert.backends.openvino.compile import convert_ir
    from ssdconvert.errors import SsdConvertError

    onnx = pick_onnx(onnx_path)
    if precision == "int8":
        if calib is None:
            raise click.UsageError("--precision int8 needs --calib (the preprocessed bins folder)")
        if bs is not None or fp16 or dry_run:
            raise click.UsageError("--precision int8 keeps the batch dynamic and the weights FP32; "
                                   "--bs, --fp16 and --dry-run do not apply")
        if composite.is_composite(onnx):
            raise SsdConvertError("--precision int8 takes one ONNX model: the parts of a composite have no "
                                  "preprocessed bins of their own to calibrate on")
        from ssdconvert.cli.quantize import quantize

        xml = str(Path(output).with_suffix(".xml")) if output else None
        click.get_current_context().invoke(quantize, model=str(onnx), calib=calib, output=xml, backend="openvino")
        return
    if calib is not None:
        raise SsdConvertError("--calib applies only to --precision int8")

    def build(model: Path, batch: int | None, out):
        return convert_ir(model, Path(out) if out and not out.endswith("/") else out, batch=batch, fp16=fp16,
                          precision=precision, tool=tool, timeout=timeout, dry_run=dry_run, progress=_progress(quiet))

    def describe(result) -> str:
        i = result.info
        batch = "dynamic batch" if i["dynamic_batch"] else f"batch {i['batch']}"
        return f"{i['weights']} weights, {i['precision']} inference, {batch}, input " + ", ".join(
            f"{x['name']}[{','.join(map(str, x['shape']))}]" for x in i["inputs"])

    build_all(onnx, bs, output, f"ov_bs{bs}" if bs else "ov", build, describe, dry_run)


# --------------------------------------------------------------------------- cnnl / magicmind


def _dim_range(text: str | None):
    if text is None:
        return None
    if ":" not in text:
        raise click.BadParameter("expected MIN:MAX, e.g. 1,3,300,300:32,3,300,300", param_hint="--dim-range")
    lo, hi = text.split(":", 1)
    return int_list(lo, "--dim-range"), int_list(hi, "--dim-range")


@click.command("cnnl")
@onnx_option
@click.option("--output", "-o", default=None,
              help="Model file, written exactly there [default: <net>_model_<precision>_<dynamic>[_<bs>]].")
@click.option("--precision", type=click.Choice(MM_PRECISIONS), default="force_float32", show_default=True,
              help="MagicMind precision; the qint* modes calibrate on --calib.")
@click.option("--calib", type=click.Path(exists=True, file_okay=False), default=None,
              help="With a qint* precision: the preprocessed bins folder; --calib-images of its samples are listed "
                   "for the builder's --file_list (chosen as `quantize` chooses them).")
@click.option("--calib-images", default=300, show_default=True, type=click.IntRange(min=1),
              help="Calibration samples for qint*.")
@click.option("--bs", type=click.IntRange(min=1), default=None, help="Batch size [default: 1].")
@click.option("--dynamic", is_flag=True, help="Shape-mutable model (SSD supports only static shapes).")
@click.option("--dim-range", default=None, metavar="MIN:MAX",
              help="With --dynamic: NCHW range, e.g. 1,3,300,300:32,3,300,300 [default: 1..bs].")
@click.option("--mlu-arch", type=click.Choice(MLU_ARCHS), default="mtp_372", show_default=True,
              help="Target MLU architecture (MLU370 = mtp_372).")
@click.option("--extra", multiple=True, metavar="'--flag value ...'", help="More build-tool flags, as is.")
@tool_options(default_timeout=3600)
def cnnl(onnx_path, output, precision, calib, calib_images, bs, dynamic, dim_range, mlu_arch, extra, tool, timeout,
         dry_run, quiet):
    """Build a Cambricon MLU offline model from the ONNX with the MagicMind build tool.

    Looks for `mm_build` on PATH and under $NEUWARE_HOME/bin; --tool may point at your own build
    script (e.g. magicmind_cloud's gen_model.py; a non-executable .py runs under python3). The
    flag spellings come from one table in ssdconvert/backends/magicmind/compile.py (some unverified for
    mm_build). Note: Cambricon's "CNNL" infer mode is eager PyTorch on the MLU with no offline
    model; this command builds the MagicMind offline model that mm_run benchmarks.

    \b
    Examples:
      ssdconvert cnnl --onnx build/ssd_resnet34_bs16.onnx --bs 16            # static, force_float32
      ssdconvert magicmind --bs 16 --precision force_float16 --tool ~/mm/gen_model.py
      ssdconvert cnnl --bs 16 --precision qint8_mixed_float16 --calib build/ssd_bin
      ssdconvert cnnl --bs 16 --dry-run                                       # print the command only
    """
    from ssdconvert.backends import composite
    from ssdconvert.backends.magicmind.compile import build_magicmind
    from ssdconvert.errors import SsdConvertError

    onnx = pick_onnx(onnx_path)
    if calib is not None and composite.is_composite(onnx):
        raise SsdConvertError("--calib takes one ONNX model: the parts of a composite have no preprocessed bins "
                              "of their own to calibrate on")

    def build(model: Path, batch: int | None, out):
        return build_magicmind(model, precision=precision, batch=batch, dynamic=dynamic,
                               dim_range=_dim_range(dim_range), mlu_arch=mlu_arch,
                               calib=Path(calib) if calib else None, calib_images=calib_images,
                               output=Path(out) if out else None, tool=tool, extra=_split_extra(extra),
                               timeout=timeout, dry_run=dry_run, progress=_progress(quiet))

    def describe(result) -> str:
        i = result.info
        shape = "dynamic shape " + str(i["dim_range"]) if i["dynamic_shape"] else f"static batch {i['batch']}"
        calibrated = f", calibrated on {i['calibration']['images']} images" if i.get("calibration") else ""
        return f"{i['precision']}{calibrated}, {i['mlu_arch']}, {shape}"

    build_all(onnx, bs or 1 if composite.is_composite(onnx) else bs, output, f"mm_bs{bs or 1}", build, describe,
              dry_run)


magicmind = copy.copy(cnnl)
magicmind.name = "magicmind"
magicmind.help = (cnnl.help or "").replace("Build a Cambricon", "Alias of `cnnl`. Build a Cambricon", 1)
magicmind.short_help = "Alias of `cnnl`: build a MagicMind model for Cambricon MLUs."

COMMANDS = [atc, cnnl, magicmind, openvino]
