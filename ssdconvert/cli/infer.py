"""`ssdconvert infer`: run a model over ssd_bin/ and write the ais_bench output layout."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ssdconvert.cli.options import BackendOptionsCommand, backend_option, cluster_option, cluster_session


@click.command("infer", cls=BackendOptionsCommand)
@click.option("--model", "-m", "model", required=True, type=click.Path(exists=True, dir_okay=False),
              help="Model file: .om (Ascend), .onnx (ONNX Runtime), .xml (OpenVINO IR), or a MagicMind model "
                   "(recognised by its .json build record).")
@click.option("--input", "-i", "input_", required=True,
              help="Folder of input tensors (<stem>.bin + manifest.json from `ssdconvert preprocess`); for a "
                   "model with several inputs one folder per input, comma-separated, in input order.")
@click.option("--output", "-o", required=True, type=click.Path(file_okay=False),
              help="Output folder; its summary goes beside it as <folder>_summary.json.")
@backend_option("auto: .om -> ascend, .onnx -> onnxruntime, .xml -> openvino, build record -> magicmind. "
                "(atc and ais_bench still mean ascend, with a note.)")
@click.option("--batchsize", type=click.IntRange(min=1), default=None,
              help="Batch for dynamic-batch models [default: 1; static models use their own batch].")
@click.option("--device", default="0", show_default=True,
              help="Ascend: NPU id, or a list (0,1,2,3) to split the inputs across NPUs (ais_bench writes one "
                   "folder per device); MagicMind: MLU id; OpenVINO: device name (CPU, GPU); ONNX Runtime: none.")
@click.option("--warmup", default=1, show_default=True, type=click.IntRange(min=0), help="Warm-up runs (not timed).")
@click.option("--loop", default=1, show_default=True, type=click.IntRange(min=1),
              help="Timed runs per batch (outputs of the last one are written).")
@click.option("--progress/--no-progress", default=None, help="Progress bar [default: when stderr is a terminal].")
@cluster_option("shards of whole batches over the cluster's devices (the layout is written here)")
def infer(model, input_, output, backend, batchsize, device, warmup, loop, progress, cluster, backend_options):
    """Run MODEL over every .bin in INPUT and write ais_bench's output layout.

    Batches are built as ais_bench does: natural-sorted files, concatenated up to the model
    batch, the last batch padded with copies of its first file (no outputs for padding). For
    each input <stem>.bin it writes OUTPUT/<stem>_0.bin (ploc) and OUTPUT/<stem>_1.bin (plabel),
    raw float32, plus OUTPUT_summary.json with ais_bench's keys. Compute time excludes file I/O;
    end-to-end time is printed separately. Crash-safe: outputs collect in a hidden .OUTPUT.partial
    folder that replaces OUTPUT when every batch is done; after an error or a kill the finished
    batches are kept, and the same command resumes with the rest. With several NPUs, ais_bench writes
    OUTPUT/device<N>_<i>/ (older versions OUTPUT/device<N>/) per device; `eval` reads them.

    \b
    Examples:
      ssdconvert infer --model build/ssd_resnet34_bs16.onnx --input build/ssd_bin \\
          --output build/result --batchsize 16
      ssdconvert infer --model build/ssd_resnet34_bs16.xml --input build/ssd_bin --output build/result_ov
      ssdconvert infer --model ssd_bs16.om --input ssd_bin --output result --batchsize 16 --device 0
      ssdconvert infer --model ssd_bs16.om --input ssd_bin --output result --batchsize 16 --device 0,1,2,3
    """
    if cluster:
        from ssdconvert.cluster.shards import run_infer
    else:
        from ssdconvert.infer import run_infer

    if progress is None:
        progress = sys.stderr.isatty()
    echo = (lambda text: click.echo(text, err=True, nl=False)) if progress else None
    with cluster_session(cluster):
        result = run_infer(model, input_, output, backend=backend, options=backend_options, batchsize=batchsize,
                           device=device, warmup=warmup, loop=loop, progress=progress, echo=echo)
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)
    if result.resumed_batches:
        click.echo(f"resumed: {result.resumed_batches} of {result.runs} batches were finished by an interrupted run "
                   "and kept (their compute times are in the statistics; end to end counts this run only)", err=True)
    for line in result.console_lines():
        click.echo(line)
    versions = ", ".join(f"{k} {v}" for k, v in result.versions.items())
    click.echo(f"backend {result.backend} ({versions}); batch {result.batch}: {result.files} files in "
               f"{result.runs} runs, {result.padded} padding slot(s)")
    click.echo(f"compute (runtime call only, no file I/O): mean {result.compute_ms['mean']:.3f} ms per batch "
               f"-> {result.throughput:.2f} samples/s")
    click.echo(f"end to end (read + infer + write, after load and warm-up): {result.end_to_end_seconds:.2f} s "
               f"-> {result.end_to_end_throughput:.2f} samples/s")
    folders = result.device_folders or [Path(result.output_dir)]
    where = (f"{len(folders)} device folders in {result.output_dir} ({', '.join(f.name for f in folders)})"
             if result.device_folders else str(result.output_dir))
    click.echo(f"wrote {result.files} x {_outputs_per_file(result, folders)} files to {where} and "
               f"{result.summary_path}")
    if result.log_path:
        click.echo(f"ais_bench log: {result.log_path}")


def _outputs_per_file(result, folders) -> int:
    return max(1, sum(1 for f in folders for _ in f.glob("*.bin")) // max(result.files, 1))


COMMANDS = [infer]
