"""`ssdconvert eval`: result/ (ais_bench layout) -> detections -> COCO mAP report."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from postprocess.evaluate import DEFAULT_EVALUATOR, EVALUATORS
from ssdconvert.cli.options import canvas_option, nms_policy_names
from ssdconvert.formatting import format_table


@click.command("eval")
@click.option("--bin_path", "--bin-path", "bin_path", required=True, type=click.Path(file_okay=False),
              help="Result folder in the ais_bench layout: <stem>_<i>.bin per model output (ssd-resnet34: "
                   "_0 ploc, _1 plabel).")
@click.option("--val_annotation", "--val-annotation", "val_annotation", type=click.Path(dir_okay=False),
              default=None, help="COCO instances json. Default: the one recorded in the manifest.")
@click.option("--manifest", type=click.Path(), default=None,
              help="manifest.json of the preprocessed inputs (or its folder). Default: found through "
                   "<bin_path>_summary.json written by the runner.")
@click.option("--model", "model_name", default=None, metavar="NAME",
              help="Detector from the zoo. Default: the model recorded in the manifest, else ssd-resnet34.")
@click.option("--nms", "nms_variant", type=click.Choice(nms_policy_names()), default=None,
              help="NMS policy of the model's head [default: its reference]. ssd-resnet34/50: reference "
                   "(MLPerf/NVIDIA per-class NMS) or ascend (the Ascend ssd_postprocess.py variant: best-class "
                   "prefilter, top 200 boxes, IoU > 0.5 suppressed). ssd-vgg16: mmdet3 (mmdet 3.x), mmdet2 "
                   "(mmdet 2.10 without nms_pre) or mmdet2-nms-pre. ssd-mobilenet-v2-fpnlite: tf-od-api (TF Object "
                   "Detection API: per class, IoU 0.6, 100 per image) or st-app (ST's app: class-agnostic, "
                   "score > 0.70, IoU 0.45). `ssdconvert models` lists them.")
@click.option("--evaluator", type=click.Choice(list(EVALUATORS)), default=DEFAULT_EVALUATOR, show_default=True,
              help="COCOeval implementation, all with pycocotools' 12 stats: numpy (pycocotools' matching and "
                   "accumulation on arrays, run beside decoding), faster-coco-eval, or pycocotools itself.")
@click.option("--output", type=click.Path(dir_okay=False), default=None,
              help="JSON report. Default: <bin_path>_eval.json beside the result folder.")
@click.option("--detections", "detections_path", type=click.Path(dir_okay=False), default=None,
              help="Also write the COCO results json (image_id, category_id, bbox, score).")
@click.option("--allow-missing", "--allow_missing", "allow_missing", is_flag=True,
              help="Evaluate the images that have results when some are missing (they are left out).")
@click.option("--batch-size", "batch_size", default=8, show_default=True, type=click.IntRange(min=1),
              help="Images read and decoded per step (memory about 2 x batch x 3 MB).")
@click.option("--workers", type=click.IntRange(min=1), default=None, metavar="N",
              help="Processes for decoding and COCO evaluation [default: number of cores]; any N gives the "
                   "same result.")
@click.option("--progress/--no-progress", default=None, help="Progress bar [default: when stderr is a terminal].")
@canvas_option
def eval_command(bin_path, val_annotation, manifest, model_name, nms_variant, evaluator, output,
                 detections_path, allow_missing, batch_size, workers, progress, canvas):
    """Decode and NMS the raw detector outputs in BIN_PATH and compute COCO mAP.

    \b
    Example:
      ssdconvert eval --bin_path out/result
      ssdconvert eval --bin_path out/result --val_annotation coco/annotations/instances_val2017.json \\
                      --manifest ssd_bin/manifest.json --detections dets.json
    """
    from tqdm import tqdm

    from postprocess.evaluate import STAT_LABELS
    from ssdconvert.evaluation import evaluate_results
    from ssdconvert.fileio import write_json

    show = sys.stderr.isatty() if progress is None else progress
    tqdm.monitor_interval = 0  # no monitor thread: eval forks worker processes
    with tqdm(unit="img", desc="eval", disable=not show, file=sys.stderr, dynamic_ncols=True) as bar:
        report = evaluate_results(bin_path, manifest=manifest, val_annotation=val_annotation, model_name=model_name,
                                  nms_variant=nms_variant, evaluator=evaluator, allow_missing=allow_missing,
                                  detections_path=detections_path, batch_size=batch_size, progress=bar,
                                  workers=workers, canvas=canvas)
    bin_path = Path(bin_path)
    output = Path(output) if output else bin_path.parent / f"{bin_path.resolve().name}_eval.json"
    write_json(output, report.to_dict())

    dtypes = ", ".join(f"{name} {dtype}" for name, dtype in report.dtypes.items())
    click.echo(f"results:     {report.bin_path} ({dtypes}, detected from file sizes)")
    click.echo(f"manifest:    {report.manifest or '-'}"
               + (f" (via {report.manifest_found_via})" if report.manifest else ""))
    click.echo(f"annotations: {report.annotation}")
    click.echo(f"model:       {report.model}, nms {report.nms}, evaluator {report.evaluator}")
    for note in report.notes:
        click.echo(f"note: {note}")
    click.echo(format_table(["stat", "COCOeval", "value"],
                            [(name, label, f"{value:.4f}") for (name, value), label
                             in zip(report.stats.items(), STAT_LABELS)]))
    missing = f" ({report.missing} missing, left out)" if report.missing else ""
    click.echo(f"images: {report.images}{missing}  detections: {report.detections}  "
               f"time: {sum(report.seconds.values()):.1f} s")
    click.echo(f"mAP (AP@[.5:.95]): {report.ap:.4f}")
    click.echo(f"report: {output}")
    if report.detections_path:
        click.echo(f"detections: {report.detections_path}")


COMMANDS = [eval_command]
