"""`ssdconvert prepare-json` and `ssdconvert preprocess`: COCO val2017 -> input tensors (.bin)."""

from __future__ import annotations

import click

from ssdconvert.cli.options import canvas_option, model_option
from ssdconvert.formatting import format_table
from preprocess.manifest import DTYPES

MAX_LISTED_FAILURES = 10


@click.command("prepare-json")
@click.argument("input_file", type=click.Path(dir_okay=False))
@click.argument("output_file", type=click.Path(dir_okay=False))
@click.option("--keep-keys", "-k", is_flag=True,
              help="Keep every annotation key but set segmentation to [] and area to 1.0 (what evaluation "
                   "needs: COCOeval reads iscrowd). Without it only image_id, bbox, category_id, id survive.")
@click.option("--pretty-print", "-p", is_flag=True, help="Indented output instead of compact.")
def prepare_json(input_file, output_file, keep_keys, pretty_print):
    """Write the bbox-only annotation file (the MLPerf prepare-json.py, same semantics).

    Images keep id, file_name, height and width; the output holds only images, annotations
    and categories.

    \b
    Example (as in the Ascend guide):
      ssdconvert prepare-json --keep-keys coco/annotations/instances_val2017.json \\
          coco/annotations/bbox_only_instances_val2017.json
    """
    from preprocess.prepare_json import IMAGE_KEYS, BBOX_ONLY_KEYS, prepare_json as run

    s = run(input_file, output_file, keep_keys=keep_keys, pretty_print=pretty_print)

    def dropped(counter) -> str:
        return ", ".join(f"{k} ({n})" for k, n in sorted(counter.items())) or "nothing"

    if keep_keys:
        annotation_note = "kept all keys; segmentation -> [], area -> 1.0"
    else:
        annotation_note = f"kept {', '.join(BBOX_ONLY_KEYS)}; dropped {dropped(s.dropped_annotation_keys)}"
    rows = [("images", s.images, f"kept {', '.join(IMAGE_KEYS)}; dropped {dropped(s.dropped_image_keys)}"),
            ("annotations", s.annotations, annotation_note),
            ("categories", s.categories, "unchanged")]
    click.echo(f"wrote {s.output}")
    click.echo(format_table(["section", "count", "what happened"], rows))
    click.echo(f"dropped top-level keys: {', '.join(s.dropped_top_level) or 'none'}")
    if keep_keys:
        click.echo("warning: --keep-keys sets every area to 1.0, so AP/AR for small, medium and large objects "
                   "computed against this file are meaningless (AP@[.5:.95], AP50 and AP75 are unaffected); "
                   "evaluate against the original instances json for those.", err=True)
    else:
        click.echo("warning: without --keep-keys 'iscrowd' is dropped and pycocotools COCOeval cannot evaluate "
                   "against this file; the reference evaluation file is made with --keep-keys.", err=True)


@click.command("preprocess")
@click.option("--val_annotation", "--val-annotation", "annotation", required=True, metavar="JSON",
              type=click.Path(dir_okay=False),
              help="COCO annotation file: bbox_only_instances_val2017.json (see prepare-json) or instances_val2017.json.")
@click.option("--data_root", "--data-root", "data_root", required=True, metavar="DIR", type=click.Path(file_okay=False),
              help="Image directory (val2017/). Every file_name must resolve inside it.")
@click.option("--save_path", "--save-path", "save_path", default="ssd_bin", show_default=True, metavar="DIR",
              type=click.Path(file_okay=False), help="Output directory for <stem>.bin files and manifest.json.")
@model_option
@click.option("--dtype", type=click.Choice(DTYPES), default="float32", show_default=True,
              help="float32 = the reference; float16 = half precision; uint8 = raw resized pixels, HWC, not "
                   "normalised, in the decoder's order (RGB; BGR for ssd-vgg16), for device-side "
                   "normalisation such as Ascend AIPP.")
@click.option("--workers", type=click.IntRange(min=1), default=None, metavar="N",
              help="Worker processes [default: number of cores].")
@click.option("--all-images/--annotated-only", "all_images", default=None,
              help="Keep images without annotations, or skip them [default: as the model's reference evaluates: "
                   "ssd-resnet34/50 skip them (4952 of 5000 in val2017), ssd-vgg16 keeps all 5000].")
@click.option("--skip-bad", is_flag=True,
              help="Exit 0 even when some images are bad (they are still reported and listed in the manifest).")
@click.option("--overwrite", is_flag=True,
              help="Rewrite every .bin, even complete ones, and allow settings that differ from the existing files.")
@click.option("--progress/--no-progress", default=None, help="Progress bar [default: when stderr is a terminal].")
@canvas_option
def preprocess(annotation, data_root, save_path, model_name, dtype, workers, all_images, skip_bad, overwrite,
               progress, canvas):
    """Turn COCO images into the model's input tensors: one raw <stem>.bin per image plus manifest.json.

    Reproduces the reference transform of the model exactly (ssd-resnet34: PIL RGB, bilinear resize
    to 300x300 without keeping the aspect, /255, ImageNet mean/std, float32 CHW; 1,080,000 bytes per
    file, the input of the Ascend scripts and ais_bench). Parallel, resumable (a re-run keeps
    complete files and redoes the rest) and crash-safe (temporary names, manifest written last).
    Bad images are reported and listed in the manifest; the exit code is 1 unless --skip-bad.
    faster-rcnn-r101-fpn: keep-ratio resize (short side 800, long side <= 1333), BGR minus the
    mean, zero padding to the canvas (--canvas, default 1344x1344); each image's unpadded size goes
    to im_info/<stem>.bin (the second model input; `infer --input` finds it through the manifest)
    and its resized size, scale and padding to the manifest. --canvas exact pads each image only to
    its own multiple of 32 (the reference at batch 1): file sizes differ, and the manifest (version
    4) records the input shape as 3 x ? x ?, each image's shape being its resized size + padding.

    \b
    Examples:
      ssdconvert preprocess --val_annotation coco/annotations/bbox_only_instances_val2017.json \\
          --data_root coco/val2017 --save_path ssd_bin
      ssdconvert preprocess --model faster-rcnn-r101-fpn --canvas 1344x1344 \\
          --val_annotation coco/annotations/instances_val2017.json --data_root coco/val2017 --save_path frcnn_bin
      ssdconvert preprocess --model faster-rcnn-r101-fpn --canvas exact \\
          --val_annotation coco/annotations/instances_val2017.json --data_root coco/val2017 --save_path frcnn_exact
    """
    from preprocess.errors import PreprocessError
    from preprocess.run import preprocess_dataset
    from ssdconvert.zoo import get_spec

    spec = get_spec(model_name).with_canvas(canvas)
    t = spec.transform
    if dtype not in t.dtypes:
        raise PreprocessError(f"{spec.name} takes {' or '.join(t.dtypes)} input, not --dtype {dtype}")
    if tuple(spec.input.shape) != t.input_shape:
        raise PreprocessError(f"model {spec.name}: input shape {spec.input.shape} does not match its transform "
                              f"({t.input_shape})")
    if all_images is None:
        all_images = spec.head.evaluated_images == "all"
    s = preprocess_dataset(annotation, data_root, save_path, t, model=spec.name, input_name=spec.input.name,
                           dtype=dtype, workers=workers, all_images=all_images, overwrite=overwrite,
                           progress=progress)
    tensor = s.input.tensor
    size = (f"{tensor.nbytes:,} bytes per image" if tensor.nbytes is not None else
            "each image padded to its own multiple of 32 (file sizes differ; manifest.json gives each shape)")
    click.echo(f"{spec.name}: {tensor.dtype} {s.input.layout} {tensor.shape}, {size}, {s.workers} worker(s)")
    rows = [("written", s.written, ""),
            ("already complete", s.reused, "kept from an earlier run" if s.reused else ""),
            ("failed", s.failed, "listed in the manifest" if s.failed else ""),
            ("skipped", s.skipped_without_annotations,
             "no annotations (--all-images keeps them)" if s.skipped_without_annotations else "")]
    click.echo(format_table(["images", "count", "note"], rows))
    for failure in s.failures[:MAX_LISTED_FAILURES]:
        click.echo(f"failed: {failure['file_name']} (id {failure['id']}): {failure['reason']}", err=True)
    if s.failed > MAX_LISTED_FAILURES:
        click.echo(f"failed: ... and {s.failed - MAX_LISTED_FAILURES} more (see {s.manifest_path})", err=True)
    for warning in s.warnings:
        click.echo(f"warning: {warning}", err=True)
    rate = f", {s.written / s.seconds:.0f} images/s" if s.written and s.seconds > 0 else ""
    click.echo(f"wrote {s.manifest_path} ({s.images} images) in {s.seconds:.1f} s{rate}")
    for side in s.side_inputs:
        click.echo(f"side input {side.tensor.name} ({side.tensor.dtype} {list(side.tensor.shape)}): "
                   f"{s.save_path / side.folder}/<stem>.bin; "
                   f"ais_bench takes --input {s.save_path},{s.save_path / side.folder} (ssdconvert infer finds it)")
    if s.failed and not s.images and all(f["reason"] == "image file not found" for f in s.failures):
        raise PreprocessError(f"none of the {s.failed} images was found under --data_root {data_root}; "
                              "is it the directory that holds the images (e.g. coco/val2017)?")
    if s.failed and not skip_bad:
        raise PreprocessError(f"{s.failed} image(s) failed; the other {s.images} are written and listed in "
                              f"{s.manifest_path}. Fix them, or pass --skip-bad to accept the run.")


COMMANDS = [prepare_json, preprocess]
