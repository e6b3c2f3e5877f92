"""`ssdconvert compare`: layer-by-layer comparison of a converted model with its reference."""

from __future__ import annotations

from pathlib import Path

import click

from ssdconvert.cli.quantize import gate_options, thresholds


@click.command("compare")
@click.argument("reference")
@click.argument("candidate")
@click.option("--input", "inputs", required=True, metavar="DIR[,DIR...]",
              help="Preprocessed bins folder (manifest.json + <stem>.bin); comma-separated for several inputs.")
@click.option("--images", default=2, show_default=True, type=click.IntRange(min=1),
              help="Samples to run, evenly spread over the folder (deterministic).")
@click.option("--output", "-o", "out_dir", default="build/compare", show_default=True,
              type=click.Path(file_okay=False), help="Folder for compare.json and compare.png.")
@click.option("--model", "model_name", default=None, metavar="NAME",
              help="Detector family [default: from the export record, else the manifest].")
@click.option("--budget-mb", default=512, show_default=True, type=click.IntRange(min=16),
              help="Memory for the intermediate tensors of one chunk (each side).")
@click.option("--save-dump", type=click.Path(file_okay=False), default=None,
              help="Also write the reference's tensors here in the dump-folder layout (docs/commands/compare.md).")
@gate_options
def compare(reference, candidate, inputs, images, out_dir, model_name, budget_mb, save_dump, min_cosine, min_snr,
            min_det_ap, max_map_drop):
    """Find the first layer where CANDIDATE starts to differ from REFERENCE.

    Each side is [backend:]model[:precision] (model.onnx, onnxruntime:m_int8.onnx,
    openvino:m.xml:bf16) or, for CANDIDATE, a folder of dumped tensors (<tensor name>.npy|.bin).
    Every ONNX node output is compared in graph order (ONNX Runtime marks all outputs; OpenVINO
    matches the ONNX tensor names it keeps; unmatched tensors are listed), then the final outputs
    with the accuracy gate's detection agreement. Prints a table and the first layer crossing the
    threshold with its op type and its inputs' errors; writes compare.json and compare.png.
    Exit code 1 when a layer crosses the threshold or the final outputs fail the gate.

    \b
    Examples:
      ssdconvert compare build/ssd.onnx build/ssd_int8.onnx --input build/ssd_bin
      ssdconvert compare build/ssd.onnx openvino:build/ssd.xml:bf16 --input build/ssd_bin --images 1
      ssdconvert compare build/ssd.onnx dumps/npu/ --input build/ssd_bin --images 1
    """
    from ssdconvert.compare import compare_models, write_outputs
    from ssdconvert.errors import SsdConvertError

    report = compare_models(reference, candidate, inputs, images=images,
                            thresholds=thresholds(min_cosine, min_snr, min_det_ap, max_map_drop), model_name=model_name,
                            budget_mb=budget_mb, save_dump_to=Path(save_dump) if save_dump else None,
                            say=lambda s: click.echo(s, err=True))
    click.echo(report.table())
    for side, names in report.unmatched.items():
        click.echo(f"not in the {side} ({len(names)}): {', '.join(names[:8])}{' ...' if len(names) > 8 else ''}")
    for note in report.notes:
        click.echo(f"note: {note}")
    click.echo("\n".join(report.final.lines()))
    click.echo(report.verdict())
    js, png = write_outputs(report, Path(out_dir))
    click.echo(f"wrote {js}" + (f" and {png}" if png else "") + f"; peak RSS {report.peak_rss_mb:.0f} MB")
    if report.first_failing is not None or not report.final.passed:
        raise SsdConvertError(report.verdict() if report.first_failing is not None else report.final.verdict())


COMMANDS = [compare]
