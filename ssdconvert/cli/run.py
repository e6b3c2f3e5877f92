"""`ssdconvert run`: the whole pipeline in one work directory, with a report."""

from __future__ import annotations

from pathlib import Path

import click

from ssdconvert.cli.bench import precision_list
from ssdconvert.cli.options import (BackendOptionsCommand, backend_names, batch_sizes, canonical_backend,
                                    canvas_option, cluster_option, cluster_session, finite_float, model_option,
                                    weights_options, with_tools)
from ssdconvert.cli.quantize import gate_options


def _names(ctx, param, value: str | None) -> tuple[str, ...]:
    """Backend names in the given order (deprecated ones noted); unknown ones are the pipeline's error."""
    from ssdconvert.backends import names

    chosen = [v.strip() for v in (value or ",".join(names())).split(",") if v.strip()]
    out = []
    for name in chosen:
        try:
            out.append(canonical_backend(name))
        except click.BadParameter:
            out.append(name)
    return tuple(out)


def _given(option: str) -> bool:
    """True if the user passed `option` (not its default)."""
    source = click.get_current_context().get_parameter_source(option)
    return source is not None and source is not click.core.ParameterSource.DEFAULT


def _pairs(value: tuple[str, ...], what: str) -> dict[str, str]:
    """NAME=PATH items -> {NAME: PATH}."""
    pairs = {}
    for item in value:
        name, sep, path = item.partition("=")
        if not sep or not path or not name.strip():
            raise click.BadParameter(f"expected {what}=PATH, got {item!r}")
        pairs[name.strip()] = path
    return pairs


def _tools(ctx, param, value: tuple[str, ...]) -> dict[str, str]:
    return {canonical_backend(name): path for name, path in _pairs(value, "BACKEND").items()}


def _releases(ctx, param, value: tuple[str, ...]) -> dict[str, str]:
    releases = _pairs(value, "LABEL")
    bad = [name for name in releases if not name.replace("-", "").replace("_", "").isalnum()]
    if bad:
        raise click.BadParameter(f"a label is letters, digits, - and _ only, got {bad[0]!r}")
    return releases


@click.command("run", cls=BackendOptionsCommand)
@model_option
@weights_options
@click.option("--coco", type=click.Path(file_okay=False, exists=True), default=None,
              help="COCO root with annotations/instances_val2017.json and val2017/ [default: synthetic data].")
@click.option("--annotation", type=click.Path(dir_okay=False, exists=True), default=None,
              help="A COCO-format annotation file to evaluate against (with --image-dir), instead of --coco.")
@click.option("--image-dir", type=click.Path(file_okay=False, exists=True), default=None,
              help="The images of --annotation.")
@click.option("--calib", "calib_images", type=click.Path(file_okay=False, exists=True), default=None,
              help="An image folder (no annotations) that calibrates the INT8 builds [default: the evaluated images].")
@click.option("--release", "releases", multiple=True, callback=_releases, metavar="LABEL=ONNX",
              help="A ready-made ONNX model (e.g. a vendor's INT8 release) run as is on ONNX Runtime beside the "
                   "builds and reported as onnxruntime@LABEL (repeatable).")
@click.option("--images", default=24, show_default=True, type=click.IntRange(min=1),
              help="Synthetic images to generate when no --coco is given.")
@click.option("--backends", default=None, callback=_names, metavar="NAME,...",
              help=f"Backends to compile, run, evaluate and benchmark, comma-separated [default: all: "
                   f"{','.join(backend_names())}, those whose tools are missing skipped]. A backend named here "
                   "that cannot run is a failure.")
@click.option("--bs", "batch_sizes", default="1,8,16", show_default=True, callback=batch_sizes,
              help="Batch sizes for the sweep; the largest is also the inference batch (--canvas exact: 1).")
@click.option("--bench-duration", default=2.0, show_default=True, type=finite_float(min=0.1),
              help="Seconds per batch size in the sweep.")
@click.option("--workers", type=click.IntRange(min=1), default=None, help="Preprocess processes [default: cores].")
@click.option("--tool", "tools", multiple=True, callback=_tools, metavar="BACKEND=PATH",
              help="A backend's compiler executable, e.g. magicmind=~/mm/gen_model.py (repeatable).")
@click.option("--workdir", type=click.Path(file_okay=False), default="build/run", show_default=True,
              help="Where every stage writes; a re-run reuses stages whose inputs did not change.")
@canvas_option
@click.option("--variants", default=None, metavar="NAME,...",
              help="Further export variants to compile and benchmark beside the main export [default: all the "
                   "model has; faster-rcnn-r101-fpn: split]. An empty value benchmarks the main export only.")
@click.option("--precisions", default=None, callback=precision_list, metavar="fp32,bf16,int8",
              help="Build and measure each backend at these precisions, side by side [default: each backend's own: "
                   "fp16 for Ascend (ATC's force_fp16), fp32 elsewhere]. A precision a backend does not build is "
                   "skipped with the reason. Every non-FP32 model is held to the accuracy gate.")
@gate_options
@cluster_option("the infer and bench stages (infer in shards, bench one cell per batch size; the rest runs here)")
def run(model_name, checkpoint, backbone, trust_checkpoint, seed, coco, annotation, image_dir, calib_images, releases,
        images, backends, batch_sizes,
        bench_duration, workers, tools, workdir, canvas, variants, precisions, min_cosine, min_snr, min_det_ap,
        max_map_drop, cluster, backend_options):
    """Run every stage: prepare-json -> preprocess -> export -> compile -> infer -> eval -> bench.

    Writes report.md, report.json and throughput.png into the work dir and prints the report.
    Exit code 1 when a backend failed, was flagged by the accuracy gate, or was named in
    --backends but cannot run here, or when a precision of --precisions ran on no backend (the
    report is written and lists each with its reason); 130 when interrupted (Ctrl-C): the finished
    stages are kept and the same command resumes.
    Without --coco it runs on a generated synthetic COCO set; without --checkpoint on seeded
    random weights (the report says the mAP is then meaningless). Each backend adds its own
    options (Ascend: --soc, --atc-tool).

    \b
    Examples:
      ssdconvert run --workdir build/demo
      ssdconvert run --model faster-rcnn-r101-fpn --canvas 320x320 --images 4 --bs 1,2 \\
          --backends onnxruntime,openvino --workdir build/frcnn_demo
      ssdconvert run --model faster-rcnn-r101-fpn --canvas exact --images 3 \\
          --backends onnxruntime,openvino --workdir build/frcnn_exact
      ssdconvert run --coco coco/ --checkpoint iter_183250.pt --backbone resnet34-333f7ec4.pth \\
          --backends onnxruntime,ascend --soc Ascend310P3 --bs 1,4,8,16,32,64 --workdir build/r34
      ssdconvert run --backends onnxruntime,openvino --precisions fp32,bf16,int8 --workdir build/prec
      ssdconvert run --model ssd-mobilenet-v2-fpnlite --annotation instances_val2014_43.json \\
          --image-dir val2014/ --calib calibration-85/ --release vendor-int8=st_int8.onnx \\
          --backends onnxruntime,openvino --precisions fp32,int8 --bs 1,8 --workdir build/demo
    """
    from ssdconvert.errors import SsdConvertError
    from ssdconvert.pipeline import RunConfig, run_and_report
    from ssdconvert.pipeline.report import failure_message

    from preprocess.spec import EXACT_CANVAS

    if (annotation is None) != (image_dir is None) or (annotation and coco):
        raise click.UsageError("--annotation and --image-dir go together, and replace --coco")
    if canvas == EXACT_CANVAS and not _given("batch_sizes"):
        batch_sizes = (1,)  # the exact mode runs batch 1
    cfg = RunConfig(Path(workdir), model_name=model_name, checkpoint=checkpoint, backbone=backbone,
                    trust=trust_checkpoint, seed=seed, coco=Path(coco) if coco else None, images=images,
                    annotation=Path(annotation) if annotation else None, image_dir=Path(image_dir) if image_dir else None,
                    calib_images=Path(calib_images) if calib_images else None, releases=releases,
                    backends=backends, backends_explicit=_given("backends"), options=with_tools(backend_options, tools),
                    batch_sizes=batch_sizes, bench_duration=bench_duration, workers=workers, canvas=canvas,
                    variants=None if variants is None else tuple(v for v in variants.split(",") if v),
                    precisions=tuple(precisions) if precisions else None,
                    gate={"min_cosine": min_cosine, "min_snr_db": min_snr, "min_detection_ap": min_det_ap,
                          "max_map_drop": max_map_drop},
                    cluster=cluster)
    with cluster_session(cluster):
        report, md, js, text = run_and_report(cfg, say=lambda line: click.echo(line, err=True))
    click.echo(text)
    click.echo(f"report: {md} and {js}")
    failed = failure_message(report)
    if failed:
        raise SsdConvertError(failed)


COMMANDS = [run]
