"""MagicMind's command line: `ssdconvert cnnl` (alias `magicmind`), and the option it adds to run and bench."""

from __future__ import annotations

import copy
from pathlib import Path

import click

from ssdconvert.backends.commands import (build_all, int_list, onnx_option, pick_onnx, progress, split_extra,
                                          tool_options)
from ssdconvert.backends.magicmind.compile import MLU_ARCHS, PRECISIONS

MLU_ARCH_HELP = "Target MLU architecture (MLU370 = mtp_372)."


def generic_options(command: str) -> list[click.Option]:
    """What `run` and `bench` take for MagicMind, each named by the MagicMindOptions field it fills."""
    if command not in ("run", "bench"):
        return []
    return [click.Option(["--mlu-arch", "mlu_arch"], type=click.Choice(MLU_ARCHS), default="mtp_372",
                         show_default=True, help=f"MagicMind builds: {MLU_ARCH_HELP[0].lower()}{MLU_ARCH_HELP[1:]}")]


def _dim_ranges(texts: tuple[str, ...]):
    """--dim-range MIN:MAX, once per model input (in input order), or None."""
    ranges = []
    for text in texts:
        if ":" not in text:
            raise click.BadParameter("expected MIN:MAX, e.g. 1,3,300,300:32,3,300,300", param_hint="--dim-range")
        lo, hi = text.split(":", 1)
        ranges.append((int_list(lo, "--dim-range"), int_list(hi, "--dim-range")))
    return ranges or None


def _describe(result) -> str:
    i = result.info
    shape = "dynamic shape " + str(i["dim_ranges"]) if i["dynamic_shape"] else f"static batch {i['batch']}"
    calibrated = f", calibrated on {i['calibration']['images']} images" if i.get("calibration") else ""
    return f"{i['precision']}{calibrated}, {i['mlu_arch']}, {shape}"


@click.command("cnnl")
@onnx_option
@click.option("--output", "-o", default=None,
              help="Model file, written exactly there [default: <net>_model_<precision>_<dynamic>[_<bs>]].")
@click.option("--precision", type=click.Choice(PRECISIONS), default="force_float32", show_default=True,
              help="MagicMind precision; the qint* modes calibrate on --calib.")
@click.option("--calib", type=click.Path(exists=True, file_okay=False), default=None,
              help="With a qint* precision: the preprocessed bins folder; --calib-images of its samples are listed, "
                   "one --file_list per model input, for ssdconvert's build script (chosen as `quantize` chooses "
                   "them).")
@click.option("--calib-images", default=300, show_default=True, type=click.IntRange(min=1),
              help="Calibration samples for qint*.")
@click.option("--bs", type=click.IntRange(min=1), default=None, help="Batch size [default: 1].")
@click.option("--dynamic", is_flag=True, help="Shape-mutable model (SSD supports only static shapes).")
@click.option("--dim-range", "dim_range", multiple=True, metavar="MIN:MAX",
              help="With --dynamic: one range per model input, in input order, e.g. 1,3,300,300:32,3,300,300 "
                   "(only the batch may vary) [default: batch 1..bs for every input].")
@click.option("--mlu-arch", type=click.Choice(MLU_ARCHS), default="mtp_372", show_default=True, help=MLU_ARCH_HELP)
@click.option("--extra", multiple=True, metavar="'--flag value ...'", help="More build-tool flags, as is.")
@tool_options(default_timeout=3600,
              tool_help="Another build script taking build_param.py's flags (gen_model.py, the release's mm_build "
                        "sample) [default: ssdconvert's build_model.py under the MagicMind Python].")
def cnnl(onnx_path, output, precision, calib, calib_images, bs, dynamic, dim_range, mlu_arch, extra, tool, timeout,
         dry_run, quiet):
    """Build a Cambricon MLU offline model from the ONNX with MagicMind.

    Runs ssdconvert's own build script (ssdconvert/backends/magicmind/build_model.py) with the
    Python that imports Cambricon's magicmind wheel ($SSDCONVERT_MAGICMIND_PYTHON, else this
    one if it can, else python3); it also calibrates the qint* precisions on --calib. --tool
    runs another build script with the same flags instead (magicmind_cloud's gen_model.py, or
    the MagicMind release's magicmind/python/samples/mm_build/ sample; a non-executable .py runs
    under that Python). Flag spellings: Cambricon's build_param.py (magicmind_cloud v1.7), one
    table in ssdconvert/backends/magicmind/compile.py. Note: Cambricon's "CNNL" infer mode is
    eager PyTorch on the MLU with no offline model; this command builds the MagicMind offline
    model that mm_run benchmarks.

    \b
    Examples:
      ssdconvert cnnl --onnx build/ssd_resnet34_bs16.onnx --bs 16            # static, force_float32
      ssdconvert magicmind --bs 16 --precision force_float16 --tool ~/mm/gen_model.py
      ssdconvert cnnl --bs 16 --precision qint8_mixed_float16 --calib build/ssd_bin
      ssdconvert cnnl --onnx frcnn.onnx --bs 16 --dynamic                     # every input: batch 1..16
      ssdconvert cnnl --bs 16 --dry-run                                       # print the command only
    """
    from ssdconvert.backends import composite
    from ssdconvert.backends.magicmind import BACKEND
    from ssdconvert.backends.magicmind.compile import build_magicmind
    from ssdconvert.errors import SsdConvertError

    onnx = pick_onnx(onnx_path)
    if calib is not None and composite.is_composite(onnx):
        raise SsdConvertError("--calib takes one ONNX model: the parts of a composite have no preprocessed bins "
                              "of their own to calibrate on")

    def build(model: Path, batch: int | None, out):
        return build_magicmind(model, precision=precision, batch=batch, dynamic=dynamic,
                               dim_ranges=_dim_ranges(dim_range), mlu_arch=mlu_arch,
                               calib=Path(calib) if calib else None, calib_images=calib_images,
                               output=Path(out) if out else None, tool=tool, extra=split_extra(extra),
                               timeout=timeout, dry_run=dry_run, progress=progress(quiet))

    build_all(BACKEND, onnx, bs or 1 if composite.is_composite(onnx) else bs, output, build, _describe, dry_run)


magicmind = copy.copy(cnnl)
magicmind.name = "magicmind"
magicmind.help = (cnnl.help or "").replace("Build a Cambricon", "Alias of `cnnl`. Build a Cambricon", 1)
magicmind.short_help = "Alias of `cnnl`: build a MagicMind model for Cambricon MLUs."
