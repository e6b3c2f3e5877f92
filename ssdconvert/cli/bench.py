"""`ssdconvert bench`: batch-size sweep -> Markdown, JSON, CSV and PNG."""

from __future__ import annotations

from pathlib import Path

import click

from ssdconvert.cli.options import (BackendOptionsCommand, backend_option, batch_sizes, cluster_option,
                                    cluster_session, finite_float, with_tools)


def _guess_zoo(model: Path, explicit: str | None):
    from ssdconvert.backends import composite
    from ssdconvert.zoo import all_specs, get_spec

    if explicit:
        return get_spec(explicit)
    if composite.is_composite(model):  # a composite names its zoo model
        return get_spec(composite.read(model).model)
    stem = model.stem.lower().replace("_", "-")
    return next((s for s in all_specs() if s.name in stem), None)


def _flops(spec, model: Path) -> float | None:
    """FLOPs per image of the zoo model, at the file's canvas where the input size is a choice."""
    if spec is None or not spec.flops_per_image:
        return None
    if spec.at_canvas is None:
        return spec.flops_per_image
    from ssdconvert.backends import composite
    from ssdconvert.backends.onnxinfo import read_onnx
    from ssdconvert.errors import SsdConvertError

    try:
        if composite.is_composite(model):
            shapes = {i["name"]: i["shape"] for i in composite.read(model).raw["inputs"]}
        elif model.suffix.lower() == ".onnx":
            shapes = {i.name: i.dims[1:] for i in read_onnx(model).inputs}
        else:
            return None
    except SsdConvertError:
        return None
    shape = shapes.get(spec.input.name)
    return spec.with_canvas((int(shape[1]), int(shape[2]))).flops_per_image if shape and None not in shape else None


def precision_list(ctx, param, value: str | None) -> list[str] | None:
    from ssdconvert.backends.base import PRECISIONS

    if value is None:
        return None
    items = [v.strip() for v in value.split(",") if v.strip()]
    bad = [v for v in items if v not in PRECISIONS]
    if bad or not items:
        raise click.BadParameter(f"expected a comma-separated list of {', '.join(PRECISIONS)}, got {value!r}")
    return list(dict.fromkeys(items))


@click.command("bench", cls=BackendOptionsCommand)
@click.option("--model", "-m", "model", required=True, type=click.Path(exists=True, dir_okay=False),
              help="A dynamic-batch .onnx (ONNX Runtime/OpenVINO; for ascend and magicmind one static model "
                   "is built per batch size), an OpenVINO .xml, an .om, or a MagicMind model.")
@backend_option("auto: .om -> ascend, .onnx -> onnxruntime, .xml -> openvino, build record -> magicmind. "
                "(atc and ais_bench still mean ascend, with a note.)")
@click.option("--bs", "batch_sizes", default="1,4,8,16,32,64", show_default=True, callback=batch_sizes,
              help="Comma-separated batch sizes.")
@click.option("--duration", default=10.0, show_default=True, type=finite_float(min=0, min_open=True),
              help="Seconds of timed runs per batch size (at least one run).")
@click.option("--warmup", default=1, show_default=True, type=click.IntRange(min=0), help="Warm-up runs per batch size.")
@click.option("--tool", type=click.Path(dir_okay=False), default=None,
              help="The compiler for per-batch builds from an .onnx (atc; a MagicMind build script) [default: PATH, "
                   "vendor env; MagicMind: ssdconvert's build_model.py].")
@click.option("--device", default="0", show_default=True, help="NPU / MLU id, or OpenVINO device (CPU).")
@click.option("--output", "-o", "output_dir", default="build/bench", show_default=True, type=click.Path(file_okay=False),
              help="Folder for the reports.")
@click.option("--name", default=None, help="Report file name stem [default: <model stem>_<backend>].")
@click.option("--zoo", "zoo_name", default=None,
              help="Zoo model the file is, for the GFLOP/s column [default: guessed from the file name].")
@click.option("--precision", "precisions", default=None, callback=precision_list, metavar="fp32,bf16,int8",
              help="Precisions to sweep, side by side [default: the backend's own]. From an .onnx each is built "
                   "first (int8 calibrated on --calib, not gated: `quantize` gates); OpenVINO computes at it.")
@click.option("--calib", type=click.Path(exists=True, file_okay=False), default=None,
              help="Preprocessed bins to calibrate int8 on.")
@cluster_option("every (precision, batch size) cell as a Ray task on a node with the device")
def bench(model, backend, batch_sizes, duration, warmup, tool, device, output_dir, name, zoo_name, precisions, calib,
          cluster, backend_options):
    """Batch-size sweep: throughput (samples/s) and latency per batch size.

    Throughput = 1000 x batch / mean compute latency (ms): compute only, inputs in memory, as
    ais_bench defines it. A dynamic-batch model is reused for every batch size; with
    --backend ascend (or magicmind) and an .onnx, ATC (the MagicMind build tool) builds one
    static model per batch size; where the runtime is not importable in this Python, ais_bench
    (mm_run) times it. Each backend adds its own options (Ascend: --soc, --dym-batch). Writes
    <name>.md (table shaped like the published one: batch size -> throughput), <name>.json
    (rows + machine + runtime versions), <name>.csv and <name>.png. Stops at the first batch
    size that fails and reports the sizes that ran (exit code 1).

    \b
    Examples:
      ssdconvert bench --model build/ssd_resnet34_bs1.onnx --bs 1,4,8,16 --duration 10 --output build/bench
      ssdconvert bench --model build/ssd_resnet34_bs1.onnx --backend openvino --bs 1,8,32
      ssdconvert bench --model ssd.onnx --backend ascend --soc Ascend310P3 --bs 1,4,8,16,32,64
      ssdconvert bench --model ssd_resnet50.onnx --backend magicmind --bs 1,8,32
      ssdconvert bench --model ssd.onnx --backend openvino --precision fp32,bf16,int8 --calib ssd_bin --bs 1,8,32
    """
    from ssdconvert.bench import BenchInterrupted, run_bench

    model = Path(model)
    spec = _guess_zoo(model, zoo_name)
    backend_opts = with_tools(backend_options, {name: tool for name in backend_options})
    asked, refused = _runnable(model, backend, backend_opts, precisions)
    stem = name or f"{model.stem}_{backend if backend != 'auto' else 'bench'}"
    options = dict(backend=backend, options=backend_opts, batch_sizes=batch_sizes, duration=duration, warmup=warmup,
                   device=device, output_dir=output_dir, calib=calib, flops_per_image=_flops(spec, model),
                   feeds=spec.feeds_for if spec else None, progress=lambda msg: click.echo(msg, err=True))
    results = []
    try:
        with cluster_session(cluster):
            if cluster:
                from ssdconvert.cluster.sweep import bench_sweep

                results = bench_sweep(model, precisions=asked, name=name,
                                      names=[f"{stem}_{p}" for p in asked] if precisions else None, **options)
            else:
                for precision in asked:
                    results.append(run_bench(model, name=f"{stem}_{precision}" if precisions else name,
                                             precision=precision, **options))
    except BenchInterrupted as stop:
        _summary([*results, stop.report], bool(precisions))
        raise
    _summary(results, bool(precisions))
    stopped = [r for r in results if r.stopped_early]
    problems = [f"the {f'{r.precision} ' if precisions else ''}sweep stopped early at {r.failure}" for r in stopped]
    problems += [f"{p} not measured: {why}" for p, why in refused.items()]
    if problems:
        raise click.ClickException("; ".join(problems) + ("; the reports hold the batch sizes that ran"
                                                          if stopped else ""))


def _runnable(model: Path, backend: str, options, precisions: list[str] | None):
    """(the precisions to sweep (None: the backend's default), {precision: why it is refused here}); the CPU's
    features are shown where the backend computes on this CPU, and each refusal said in one line. All refused:
    the refusal is the error."""
    from ssdconvert import backends
    from ssdconvert.cpu import cpu_features
    from ssdconvert.errors import SsdConvertError

    target = backends.for_model(model, backend).configured(options)
    if target.host_cpu:
        click.echo(f"CPU: {cpu_features().describe()}", err=True)
    refused = {p: why for p in precisions or [] if (why := target.precision_refusal(p))}
    asked = [p for p in precisions if p not in refused] if precisions else [None]
    if not asked:
        raise SsdConvertError("; ".join(refused.values()))
    for precision, why in refused.items():
        click.echo(f"skipped {precision}: {why}", err=True)
    return asked, refused


def _summary(results, by_precision: bool) -> None:
    from ssdconvert.bench import THROUGHPUT_DEFINITION, precision_table, throughput_table

    click.echo(precision_table(results) if by_precision else throughput_table(results[0]))
    click.echo(f"unit: samples/s; {THROUGHPUT_DEFINITION}")
    for result in results:
        click.echo("wrote " + ", ".join(result.outputs.values()))


COMMANDS = [bench]
