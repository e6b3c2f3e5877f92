"""`ssdconvert eval`: ais_bench-layout results -> detections -> COCO mAP.

Wires the manifest (which images, their sizes, the annotation file) and the model spec's head
(outputs, decoder, NMS policies, category mapping, evaluated images) into the postprocess stage.
The results are one folder, or the per-device folders of a multi-device ais_bench run
(stageio/results.py names the layout): the runner's summary beside the folder (or, for several
devices, beside each device folder) records the `--input` folder, where the manifest is, and the
`--device` list, whose folders must all be there.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

from ssdconvert.errors import SsdConvertError
from ssdconvert.fileio import sha256_of

MANIFEST_FLAG = ("--manifest ssd_bin/manifest.json (or --val_annotation A alone to evaluate every "
                 "annotated image of A)")
ANNOTATION_FLAG = "--val_annotation path/to/instances_val2017.json"
SHOW = 5
DEFAULT_MODEL = "ssd-resnet34"


class Progress(Protocol):
    """Where eval reports progress (a tqdm bar fits): the image count once, then images done."""

    def reset(self, total: int) -> None: ...

    def update(self, n: int) -> None: ...


@dataclass
class EvalReport:
    bin_path: str
    model: str
    nms: str
    evaluator: str
    manifest: str | None
    manifest_found_via: str
    annotation: str
    dtypes: dict[str, str]
    images: int
    missing: int
    missing_first: list[str]
    detections: int
    stats: dict[str, float]
    seconds: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    detections_path: str | None = None

    @property
    def ap(self) -> float:
        return self.stats["AP"]

    def to_dict(self) -> dict:
        return asdict(self)


def _first(items: Sequence[str]) -> str:
    return ", ".join(items[:SHOW]) + (" ..." if len(items) > SHOW else "")


def _input_folder(args: Sequence[str]) -> str | None:
    """The first folder passed to ais_bench --input (comma-separated, one per model input)."""
    for k, arg in enumerate(args):
        if arg in ("--input", "-i") and k + 1 < len(args):
            value = args[k + 1]
        elif arg.startswith("--input="):
            value = arg.split("=", 1)[1]
        else:
            continue
        return value.split(",")[0]
    return None


def runner_summary(bin_path: Path) -> Path | None:
    """The runner's summary json: `<bin_path>_summary.json`, or (several devices) the first
    `<bin_path>/device<N>[_<i>]_summary.json`."""
    from stageio.results import SUMMARY_SUFFIX, is_device_summary, summary_path

    sibling = summary_path(bin_path)
    if sibling.is_file():
        return sibling
    per_device = sorted(p for p in bin_path.glob(f"device*{SUMMARY_SUFFIX}") if is_device_summary(p))
    return per_device[0] if per_device else None


def _summary_args(summary: Path) -> list[str]:
    try:
        return [str(a) for a in json.loads(summary.read_text()).get("args") or []]
    except (OSError, ValueError, AttributeError) as exc:
        raise SsdConvertError(f"cannot read runner summary {summary} ({exc}); pass {MANIFEST_FLAG}") from None


def recorded_devices(summary: Path | None) -> list[str] | None:
    """The --device list recorded in a multi-device run's summary args (None for one device)."""
    if summary is None:
        return None
    args = _summary_args(summary)
    for k, arg in enumerate(args):
        value = args[k + 1] if arg in ("--device", "-d") and k + 1 < len(args) else (
            arg.split("=", 1)[1] if arg.startswith("--device=") else None)
        if value is not None:
            devices = [d.strip() for d in value.split(",") if d.strip()]
            return devices if len(devices) > 1 else None
    return None


def find_manifest(bin_path: Path) -> tuple[Path, str]:
    """The manifest of the inputs that produced `bin_path`, via the runner's summary json."""
    from stageio.results import summary_path

    summary = runner_summary(bin_path)
    if summary is None:
        raise SsdConvertError(f"cannot find the manifest: no runner summary {summary_path(bin_path).name} beside "
                              f"{bin_path} (nor device summaries in it); pass {MANIFEST_FLAG}")
    folder = _input_folder(_summary_args(summary))
    if folder is None:
        raise SsdConvertError(f"runner summary {summary} records no --input folder; pass {MANIFEST_FLAG}")
    candidates = [Path(folder)] if Path(folder).is_absolute() else [Path(folder), summary.parent / folder]
    for base in candidates:
        if (base / "manifest.json").is_file():
            return base / "manifest.json", f"input folder recorded in {summary}"
    raise SsdConvertError(f"no manifest.json in {folder} (the input folder recorded in {summary}); "
                          f"pass {MANIFEST_FLAG}")


def _resolve_annotation(recorded: str, manifest_path: Path) -> Path | None:
    path = Path(recorded)
    for candidate in ([path] if path.is_absolute() else [path, manifest_path.parent / path]):
        if candidate.is_file():
            return candidate
    return None


def _locate_inputs(bin_path: Path, manifest: str | Path | None, val_annotation: str | Path | None,
                   notes: list[str]):
    """(manifest path or None, how it was found, manifest or None, annotation path)."""
    from preprocess.manifest import read_manifest

    if manifest is not None:
        manifest_path, found_via = Path(manifest), "--manifest"
        if manifest_path.is_dir():
            manifest_path = manifest_path / "manifest.json"
    else:
        try:
            manifest_path, found_via = find_manifest(bin_path)
        except SsdConvertError:
            if val_annotation is None:
                raise
            manifest_path, found_via = None, "none"
            notes.append(f"no manifest found for {bin_path}: evaluating the model's reference image set of "
                         f"{val_annotation} (result stem = file name without directories, up to the first '.')")
    man = read_manifest(manifest_path) if manifest_path is not None else None
    if man is not None and not man.has_annotations:
        raise SsdConvertError(f"{manifest_path} describes an image folder without annotations ({len(man.images)} images "
                              f"of {man.data_root}, ids given in name order: a calibration set); eval needs the "
                              "images preprocessed with --val_annotation")
    if val_annotation is not None:
        annotation = Path(val_annotation)
    else:
        annotation = _resolve_annotation(man.annotation_path, manifest_path)
        if annotation is None:
            raise SsdConvertError(f"annotation file {man.annotation_path} recorded in {manifest_path} does "
                                  f"not exist; pass {ANNOTATION_FLAG}")
        if man.annotation_sha256 and sha256_of(annotation) != man.annotation_sha256:
            notes.append(f"{annotation} changed since preprocessing (its sha256 differs from the manifest's)")
    if not annotation.is_file():
        raise SsdConvertError(f"annotation file {annotation} does not exist; pass {ANNOTATION_FLAG}")
    return manifest_path, found_via, man, annotation


def reference_images(annotation: Path, all_images: bool, geometry=None) -> list:
    """Without a manifest: the images of `annotation` the model's reference evaluates (all, or those
    with annotations), in json order, named by preprocess's stem rule (file name without
    directories, cut at the first '.'). `geometry((width, height))` gives the per-image fields a
    resize-and-pad model records (the transform's converter), computed from the json size."""
    from preprocess.annotations import load_annotations, select_images, stem_of
    from preprocess.errors import PreprocessError
    from preprocess.manifest import ImageRecord

    try:
        chosen, _ = select_images(load_annotations(annotation), all_images=all_images)
    except PreprocessError as exc:
        raise SsdConvertError(str(exc)) from None
    return [ImageRecord(id=im.id, file_name=im.file_name, stem=stem_of(im.file_name), width=im.width,
                        height=im.height, **(geometry((im.width, im.height)) if geometry else {})) for im in chosen]


def _family(bin_path: Path, man, manifest_path: Path | None, model_name: str | None) -> str:
    """The detector --model, the manifest and the model that wrote the results (its summary) agree on."""
    from ssdconvert.family import agree, manifest_claim, model_claim, option_claim

    summary = runner_summary(bin_path)
    try:
        model = json.loads(summary.read_text()).get("ssdconvert", {}).get("model") if summary else None
    except (OSError, ValueError, AttributeError):
        model = None
    folder = manifest_path.parent if manifest_path else bin_path
    return agree([option_claim(model_name), manifest_claim(man, folder), model_claim(model) if model else None],
                 "evaluate with the detector that made the results") or model_name or DEFAULT_MODEL


def evaluate_results(bin_path: str | Path, *, manifest: str | Path | None = None,
                     val_annotation: str | Path | None = None, model_name: str | None = None,
                     nms_variant: str | None = None, evaluator: str | None = None,
                     allow_missing: bool = False, detections_path: str | Path | None = None,
                     batch_size: int = 8, progress: Progress | None = None,
                     workers: int | None = None, canvas: tuple[int, int] | None = None) -> EvalReport:
    """Decode, NMS and COCO-evaluate every result of `bin_path` (see the module docstring).

    `model_name` defaults to the model recorded in the manifest, else ssd-resnet34; `nms_variant` to
    the reference policy of the model's head; `evaluator` to postprocess.evaluate's default.
    `workers` processes share the decoding and the COCO evaluation (default: one per core); the
    result does not depend on their number. `canvas`: without a manifest, the canvas a
    resize-and-pad model was preprocessed for (its resize rule depends on it).
    """
    from postprocess.evaluate import DEFAULT_EVALUATOR, STAT_NAMES, ArrayEvaluation
    from postprocess.parallel import default_workers

    started = time.perf_counter()
    evaluator = evaluator or DEFAULT_EVALUATOR
    bin_path = Path(bin_path)
    if not bin_path.is_dir():
        raise SsdConvertError(f"--bin_path {bin_path} is not a directory")
    notes: list[str] = []
    job = _prepare(bin_path, manifest, val_annotation, model_name, nms_variant, evaluator, canvas, notes)
    files = _scan(bin_path, job, allow_missing, notes)
    missing = [stem for stem, _ in files.missing]
    ids = [im.id for im in files.present]
    arrays = ArrayEvaluation(job.gt, ids, job.decoder.float32_rows) if evaluator == "numpy" else None
    seconds = {"setup": time.perf_counter() - started}

    # Read, decode, NMS -> rows (and, for the arrays, COCO matching per image) over `workers` processes
    workers = workers or default_workers()
    rows, parts = _timed(seconds, "postprocess", _decode, files, job, arrays, batch_size, workers, progress)
    _timed(seconds, "write_detections", _write_detections, rows, detections_path)
    stats = _timed(seconds, "evaluate", _stats, job, rows, ids, parts, arrays, evaluator, workers)
    return EvalReport(
        bin_path=str(bin_path), model=job.spec.name, nms=job.decoder.policy.name, evaluator=evaluator,
        manifest=str(job.manifest_path) if job.manifest_path else None, manifest_found_via=job.found_via,
        annotation=str(job.annotation), dtypes=dict(zip((o.name for o in files.outputs), files.dtypes)),
        images=len(files.present), missing=len(missing), missing_first=missing[:SHOW],
        detections=len(rows), stats=dict(zip(STAT_NAMES, stats)),
        seconds={name: round(value, 3) for name, value in seconds.items()},
        notes=notes, detections_path=str(detections_path) if detections_path else None,
    )


@dataclass
class _EvalJob:
    """What eval works with once the inputs are found: the model, its decoder, the ground truth and the images."""

    manifest_path: Path | None
    found_via: str
    annotation: Path
    spec: Any  # ssdconvert.zoo.ModelSpec
    decoder: Any  # postprocess.heads.Decoder
    gt: Any  # postprocess.evaluate's ground truth
    images: list
    inv_map: Any


def _prepare(bin_path: Path, manifest: str | Path | None, val_annotation: str | Path | None, model_name: str | None,
             nms_variant: str | None, evaluator: str, canvas: tuple[int, int] | None, notes: list[str]) -> _EvalJob:
    """Find the manifest and annotations, choose the model and its decoder, load the ground truth and check
    that it has every image."""
    from postprocess.evaluate import load_ground_truth
    from postprocess.heads import decoder_for
    from ssdconvert.zoo import get_spec

    manifest_path, found_via, man, annotation = _locate_inputs(bin_path, manifest, val_annotation, notes)
    model_name = _family(bin_path, man, manifest_path, model_name)
    spec = get_spec(model_name).with_canvas(canvas)
    try:
        decoder = decoder_for(spec.head, nms_variant)
    except ValueError:
        raise SsdConvertError(f"--nms {nms_variant} is not a policy of {spec.name}; choose from "
                              f"{', '.join(spec.head.policy_names)}") from None
    if man is None:
        which = "every image" if spec.head.evaluated_images == "all" else "the images that have annotations"
        notes.append(f"{spec.name} evaluates {which} of the annotation file")

    gt = load_ground_truth(annotation, evaluator)
    if man is not None:
        images = list(man.images)
    else:
        images = reference_images(annotation, spec.head.evaluated_images == "all", spec.transform.converter().geometry)
    unknown = [str(im.id) for im in images if im.id not in gt.imgs]
    if unknown:
        raise SsdConvertError(f"{len(unknown)} of the {len(images)} manifest images are not in {annotation} "
                              f"(ids {_first(unknown)}); pass the annotation file used for preprocessing with "
                              f"{ANNOTATION_FLAG}")
    inv_map = spec.head.category_ids(gt.dataset.get("categories", []))
    return _EvalJob(manifest_path, found_via, annotation, spec, decoder, gt, images, inv_map)


def _scan(bin_path: Path, job: _EvalJob, allow_missing: bool, notes: list[str]):
    """The result files of the job's images (stageio.reader.ResultFiles); missing ones only with allow_missing."""
    from stageio.reader import scan_results

    files = scan_results(bin_path, job.images, job.spec.outputs,
                         devices=recorded_devices(runner_summary(bin_path)))
    if files.folders:
        notes.append(f"results of {len(files.folders)} devices: {', '.join(f.name for f in files.folders)}")
    missing = [stem for stem, _ in files.missing]
    if missing and not allow_missing:
        raise SsdConvertError(f"{bin_path} has no results for {len(missing)} of {len(job.images)} images "
                              f"({_first(missing)}); pass --allow-missing to evaluate the other {len(files.present)}")
    if missing:
        notes.append(f"results missing for {len(missing)} images ({_first(missing)}): left out of the evaluation")
    return files


def _timed(seconds: dict[str, float], name: str, step: Callable[..., Any], *args: Any) -> Any:
    """step(*args), its wall time added to `seconds` under `name`."""
    started = time.perf_counter()
    result = step(*args)
    seconds[name] = time.perf_counter() - started
    return result


def _decode(files, job: _EvalJob, arrays, batch_size: int, workers: int, progress: Progress | None):
    """(every image's rows, the parts: (rows, matches) per slice of images, matches when `arrays`)."""
    from postprocess.parallel import decode_slices, joined_rows

    if progress is not None:
        progress.reset(total=len(files.present))
    parts = decode_slices(files, job.decoder, job.inv_map, batch_size=batch_size, workers=workers,
                          progress=progress, then=arrays.match if arrays is not None else None)
    return joined_rows(parts), parts


def _write_detections(rows, detections_path: str | Path | None) -> None:
    """The COCO results json, when asked for."""
    from postprocess.coco import results_json
    from ssdconvert.fileio import atomic_path

    if detections_path is None:
        return
    with atomic_path(detections_path) as tmp, open(tmp, "w") as fh:
        for piece in results_json(rows):
            fh.write(piece)


def _stats(job: _EvalJob, rows, ids: list[int], parts, arrays, evaluator: str, workers: int):
    """The 12 COCO stats: from the arrays' matches, or by the evaluator library."""
    from postprocess.evaluate import coco_stats

    if arrays is not None:
        return arrays.stats([matches for _, matches in parts], workers=workers)
    return coco_stats(job.gt, rows, ids, evaluator, float32_rows=job.decoder.float32_rows, workers=workers)
