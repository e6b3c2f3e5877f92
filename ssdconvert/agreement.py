"""How far a candidate model's answers are from a reference's on the same inputs: the accuracy gate.

Two kinds of figures, both computed batch by batch so memory stays bounded:

- **Per output tensor** (`TensorFigures`): max abs diff; max rel diff (max abs diff over the
  reference's largest magnitude, so near-zero reference values do not blow it up); SNR in dB,
  10 log10(sum ref^2 / sum (cand - ref)^2) (20 dB = 10 % RMS error, 40 dB = 1 %); cosine
  similarity of the flattened tensors.
- **Detection agreement** (`DetectionAgreement`): both sides decoded with the model's own head
  decoder (its reference NMS policy), the reference's detections become the ground truth and the
  candidate's detections are scored against them with COCO AP@[.5:.95] (pycocotools' COCOeval,
  all areas). COCOeval keeps at most maxDets (100) detections per image and class, but a head
  keeping 200 per image can give one class more (the seeded ssd-resnet34: up to 130), whose
  ground-truth boxes then cannot all be matched: maxDets is raised to the most detections either
  side has in one image and class, so a candidate that reproduces the reference's detections
  scores exactly 1.0; missing, moved or re-ranked boxes lower it.

With seeded random weights the detections are near-degenerate (every score close to the NMS
threshold, 200 boxes per image), so the detection figure is a strict test of numerical agreement
and says nothing about accuracy on real objects; the report says so. With real weights and real
annotations, `real_map` adds each side's COCO mAP against the annotations and the difference.

Default thresholds, from measurement on a real model (benchmarks/gate_thresholds.py,
results/gate_thresholds.md; docs/precision.md): ST's COCO-trained SSD-MobileNetV2-FPNLite on 43
annotated COCO val2014 images. The good INT8 models (the vendor's release, ONNX Runtime MinMax and
Percentile, NNCF) lose at most 0.47 AP points and score cosine >= 0.9906, SNR >= 17.2 dB on every
output and detection agreement >= 0.476; INT8 models calibrated on all-zero inputs score cosine
<= 0.9884, SNR 16.3-16.4 dB and agreement <= 0.325, and lose 1.08 AP points (MinMax) or gain 0.18
(Percentile: 43 images do not see every damage, so the agreement figures stay beside the mAP).
So: max mAP drop 1.0 AP point, cosine 0.99, detection agreement 0.4 (the figure with the widest
margin); SNR 15 dB stays a floor (16.3 vs 17.2 dB is too close to separate on). The seeded models
agree (faithful INT8 0.5-0.8, zero-calibrated 0.00). Every threshold is an option
(`quantize --max-map-drop/--min-cosine/--min-snr/--min-det-ap`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

import numpy as np

NUMERICAL_ONLY = ("weights are seeded random: these figures describe numerical agreement with the reference only, "
                  "not accuracy on real objects")


@dataclass(frozen=True)
class Thresholds:
    """A candidate passes when every output and the detections clear these."""

    min_cosine: float = 0.99
    min_snr_db: float = 15.0
    min_detection_ap: float = 0.4
    max_map_drop: float = 1.0  # AP points (100 x COCO AP) the candidate may lose on real annotations

    def allows_map_delta(self, delta_ap: float) -> bool:
        """A candidate whose real COCO AP differs from the reference's by `delta_ap` (COCO AP, negative: a loss)
        loses at most max_map_drop AP points."""
        return -100 * delta_ap <= self.max_map_drop

    def describe(self) -> str:
        return (f"real COCO mAP drop <= {self.max_map_drop} AP points where the images have annotations; "
                f"cosine >= {self.min_cosine}, SNR >= {self.min_snr_db} dB per output; detection agreement "
                f"AP >= {self.min_detection_ap}")


@dataclass
class TensorFigures:
    name: str
    elements: int
    max_abs: float
    max_rel: float
    snr_db: float  # inf when identical
    cosine: float
    equal: float | None = None  # an integer output (class ids, counts): the share of equal elements

    @property
    def integer(self) -> bool:
        return self.equal is not None

    def problems(self, t: Thresholds) -> list[str]:
        """The thresholds it misses. An integer output (labels) has no meaningful cosine or SNR: it is judged
        through the detection agreement, not here."""
        if self.integer:
            return []
        found = []
        if not self.cosine >= t.min_cosine:
            found.append(f"cosine {self.cosine:.4f} < {t.min_cosine}")
        if not self.snr_db >= t.min_snr_db:
            found.append(f"SNR {self.snr_db:.1f} dB < {t.min_snr_db} dB")
        return found

    def line(self) -> str:
        if self.integer:
            return (f"{self.name}: integer, {100 * self.equal:.1f} % of {self.elements} elements equal (judged by "
                    "the detection agreement)")
        return (f"{self.name}: max abs {self.max_abs:.3g}, max rel {self.max_rel:.3g}, SNR {fmt_db(self.snr_db)}, "
                f"cosine {self.cosine:.5f}")


def points(ap: float) -> str:
    """A COCO AP in AP points (100 x AP)."""
    return f"{100 * ap:.2f}"


def fmt_db(value: float) -> str:
    return "inf dB" if math.isinf(value) else f"{value:.1f} dB"


class TensorStats:
    """Streams (reference, candidate) pairs of one tensor into TensorFigures; float64 sums.

    Non-finite values the two sides share (the same infinity, or NaN on both: e.g. a mask filled
    with -inf) agree and stay out of the sums; any other non-finite value fails the tensor."""

    def __init__(self, name: str):
        self.name = name
        self.elements = 0
        self.max_abs = 0.0
        self.ref_max = 0.0
        self.ref_sq = self.cand_sq = self.diff_sq = self.dot = 0.0
        self.nonfinite = 0
        self.equal: int | None = None  # equal elements, counted for integer tensors

    def update(self, reference: np.ndarray, candidate: np.ndarray) -> None:
        if reference.shape != candidate.shape:
            raise ValueError(f"{self.name}: reference shape {reference.shape} vs candidate {candidate.shape}")
        if np.asarray(reference).dtype.kind in "iub":
            self.equal = (self.equal or 0) + int((np.asarray(reference) == np.asarray(candidate)).sum())
        ref = np.asarray(reference, dtype=np.float64).ravel()
        cand = np.asarray(candidate, dtype=np.float64).ravel()
        self.elements += ref.size
        finite = np.isfinite(ref) & np.isfinite(cand)
        if not finite.all():
            shared = (ref == cand) | (np.isnan(ref) & np.isnan(cand))
            self.nonfinite += int((~finite & ~shared).sum())
            ref, cand = ref[finite], cand[finite]
        diff = cand - ref
        if ref.size:
            self.max_abs = max(self.max_abs, float(np.abs(diff).max()))
            self.ref_max = max(self.ref_max, float(np.abs(ref).max()))
        self.ref_sq += float(ref @ ref)
        self.cand_sq += float(cand @ cand)
        self.diff_sq += float(diff @ diff)
        self.dot += float(ref @ cand)

    def figures(self) -> TensorFigures:
        if self.nonfinite:
            return TensorFigures(self.name, self.elements, math.inf, math.inf, -math.inf, -1.0)
        snr = math.inf if self.diff_sq == 0 else (
            10 * math.log10(self.ref_sq / self.diff_sq) if self.ref_sq > 0 else -math.inf)
        norms = math.sqrt(self.ref_sq * self.cand_sq)
        cosine = 1.0 if norms == 0 and self.diff_sq == 0 else (self.dot / norms if norms else 0.0)
        rel = self.max_abs / self.ref_max if self.ref_max else (0.0 if self.max_abs == 0 else math.inf)
        equal = None if self.equal is None else (self.equal / self.elements if self.elements else 1.0)
        return TensorFigures(self.name, self.elements, self.max_abs, rel, snr, cosine, equal)


def tensor_figures(name: str, reference: np.ndarray, candidate: np.ndarray) -> TensorFigures:
    stats = TensorStats(name)
    stats.update(reference, candidate)
    return stats.figures()


@dataclass
class DetectionAgreement:
    ap: float | None  # COCO AP@[.5:.95] of the candidate's detections against the reference's
    ap50: float | None
    reference_detections: int
    candidate_detections: int
    images: int
    note: str = ""

    def line(self) -> str:
        if self.ap is None:
            return f"detection agreement: n/a ({self.note})"
        return (f"detection agreement: AP {self.ap:.4f} (AP50 {self.ap50:.4f}) of {self.candidate_detections} "
                f"candidate detections against the reference's {self.reference_detections} on {self.images} images")


def detection_agreement(reference_rows: np.ndarray, candidate_rows: np.ndarray, images: Sequence,
                        num_classes: int, background: int) -> DetectionAgreement:
    """COCO AP of `candidate_rows` scored against `reference_rows` as ground truth (see module doc).
    Rows are [image_id, x, y, w, h, score, label] with labels as category ids."""
    from postprocess.evaluate import ground_truth_from_rows

    counts = (len(reference_rows), len(candidate_rows), len(images))
    if not len(reference_rows):
        return DetectionAgreement(None, None, *counts, note="the reference detects nothing on these images, so "
                                  "there is nothing to agree on; compare the tensor figures")
    if not len(candidate_rows):
        return DetectionAgreement(0.0, 0.0, *counts)
    labels = [k for k in range(num_classes) if k != background]
    gt = ground_truth_from_rows(reference_rows, images, labels, evaluator="pycocotools")
    ap, ap50 = _coco_ap(gt, candidate_rows, [im.id for im in images],
                        max(MAX_DETS, most_per_image_class(reference_rows), most_per_image_class(candidate_rows)))
    return DetectionAgreement(max(ap, 0.0), max(ap50, 0.0), *counts)


MAX_DETS = 100  # COCOeval's own maxDets for AP, raised where one image has more detections of one class


def most_per_image_class(rows: np.ndarray) -> int:
    """The most rows [image_id, x, y, w, h, score, label] any one image has of one class."""
    if not len(rows):
        return 0
    _, counts = np.unique(rows[:, [0, 6]].astype(np.int64), axis=0, return_counts=True)
    return int(counts.max())


def _coco_ap(gt, rows: np.ndarray, image_ids: Sequence[int], max_dets: int) -> tuple[float, float]:
    """COCOeval bbox AP@[.5:.95] and AP50 of `rows` against `gt` (a pycocotools COCO), keeping `max_dets`
    detections per image and class."""
    import contextlib
    import io

    from pycocotools.cocoeval import COCOeval

    results = [{"image_id": int(r[0]), "bbox": [float(v) for v in r[1:5]], "score": float(r[5]),
                "category_id": int(r[6])} for r in rows]
    with contextlib.redirect_stdout(io.StringIO()):
        ev = COCOeval(gt, gt.loadRes(results), iouType="bbox")
        ev.params.imgIds = sorted({int(i) for i in image_ids})
        ev.params.maxDets = [1, 10, max_dets]
        ev.evaluate()
        ev.accumulate()
    # summarize() would read AP@[.5:.95] at a fixed maxDets of 100: the mean of precision[T, R, K, area all,
    # maxDets[2]] over the defined entries (-1: no ground truth), as its _summarize computes it
    precision = ev.eval["precision"][:, :, :, 0, 2]

    def mean(values: np.ndarray) -> float:
        return float(values[values > -1].mean()) if (values > -1).any() else -1.0

    return mean(precision), mean(precision[np.isclose(ev.params.iouThrs, 0.5)])


@dataclass
class AgreementReport:
    reference: str
    candidate: str
    images: int
    outputs: list[TensorFigures]
    detections: DetectionAgreement | None
    thresholds: Thresholds
    weights: str = "unknown"  # random | trained | unknown
    real_map: dict | None = None  # {"reference": AP, "candidate": AP, "delta": AP} with real weights + annotations
    notes: list[str] = field(default_factory=list)

    @property
    def failures(self) -> list[str]:
        """One line per figure below its threshold: the real mAP drop first, then the worst output first."""
        found = []
        drop = self.map_drop_points
        if drop is not None and not self.thresholds.allows_map_delta(self.real_map["delta"]):
            found.append(f"real COCO mAP drops {drop:.2f} AP points > {self.thresholds.max_map_drop} "
                         f"({points(self.real_map['reference'])} -> {points(self.real_map['candidate'])} AP points "
                         f"on {self.images} annotated images)")
        for fig in sorted(self.outputs, key=lambda f: (f.snr_db, f.cosine)):
            problems = fig.problems(self.thresholds)
            if problems:
                found.append(f"{fig.name}: {', '.join(problems)}")
        det = self.detections
        if det is not None and det.ap is not None and not det.ap >= self.thresholds.min_detection_ap:
            found.append(f"detection agreement AP {det.ap:.4f} < {self.thresholds.min_detection_ap}")
        return found

    @property
    def map_drop_points(self) -> float | None:
        """How many AP points (100 x COCO AP) the candidate loses against the reference on the real annotations
        (negative: it gains); None without them."""
        return None if not self.real_map else -100 * self.real_map["delta"]

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def worst(self) -> TensorFigures | None:
        """The float output furthest from the reference (integer outputs have no SNR to rank by)."""
        return min((f for f in self.outputs if not f.integer), key=lambda f: (f.snr_db, f.cosine), default=None)

    def verdict(self) -> str:
        if self.passed:
            return f"PASSED the accuracy gate ({self.thresholds.describe()})"
        return f"FAILED the accuracy gate: {'; '.join(self.failures)}"

    def lines(self) -> list[str]:
        lines = [f"accuracy gate: {self.candidate} against {self.reference} on {self.images} images"]
        if self.real_map:
            lines.append(f"  real COCO mAP: reference {points(self.real_map['reference'])}, candidate "
                         f"{points(self.real_map['candidate'])} AP points, delta "
                         f"{100 * self.real_map['delta']:+.2f} (may drop {self.thresholds.max_map_drop})")
        lines += [f"  {fig.line()}" for fig in self.outputs]
        if self.detections is not None:
            lines.append(f"  {self.detections.line()}")
        if self.weights == "random":
            lines.append(f"  note: {NUMERICAL_ONLY}")
        lines += [f"  note: {n}" for n in self.notes]
        lines.append(f"  {self.verdict()}")
        return lines

    def to_dict(self) -> dict:
        def finite(v):
            return v if not isinstance(v, float) or math.isfinite(v) else str(v)

        data = asdict(self)
        data["outputs"] = [{k: finite(v) for k, v in asdict(f).items()} for f in self.outputs]
        data.update({"passed": self.passed, "failures": self.failures,
                     "meaning": NUMERICAL_ONLY if self.weights == "random" else "agreement with the reference"})
        return data


Progress = Callable[[int], None]


class Accumulator:
    """Batches of (reference outputs, candidate outputs) in -> AgreementReport out (see module doc)."""

    def __init__(self, spec, thresholds: Thresholds, weights: str):
        from postprocess.heads import decoder_for

        self.spec, self.thresholds, self.weights = spec, thresholds, weights
        self.decoder = decoder_for(spec.head)
        self.inv_map = np.arange(spec.head.num_classes)
        self.names = list(spec.output_names)
        self.stats = {name: TensorStats(name) for name in self.names}
        self.rows: dict[str, list[np.ndarray]] = {"reference": [], "candidate": []}
        self.images: list = []

    def add(self, records: Sequence, reference: Sequence[np.ndarray], candidate: Sequence[np.ndarray]) -> None:
        """One batch: the records of its images and each side's outputs in `spec.output_names` order."""
        for side, arrays in (("reference", reference), ("candidate", candidate)):
            self.rows[side].append(self.decoder.rows(self.decoder.select(list(arrays)), records, self.inv_map))
        for name, ref, cand in zip(self.names, reference, candidate):
            self.stats[name].update(ref, np.asarray(cand).astype(ref.dtype, copy=False))
        self.images += list(records)

    def report(self, reference: str, candidate: str, annotation=None) -> AgreementReport:
        ref_rows, cand_rows = (np.concatenate(self.rows[s]) if self.rows[s] else np.zeros((0, 7)) for s in self.rows)
        head = self.spec.head
        det = detection_agreement(ref_rows, cand_rows, self.images, head.num_classes, head.background_index)
        report = AgreementReport(reference, candidate, len(self.images), [self.stats[n].figures() for n in self.names],
                                 det, self.thresholds, weights=self.weights)
        if annotation is not None and self.weights != "random":
            report.real_map = _real_map(annotation, self.spec, ref_rows, cand_rows, self.images)
        return report


def measure(reference, candidate, samples, spec, *, batch: int = 8, thresholds: Thresholds = Thresholds(),
            weights: str = "unknown", annotation=None, progress: Progress | None = None) -> AgreementReport:
    """Run runners `reference` and `candidate` (not yet active) on `samples` (samples.SampleSet) and
    measure their agreement for the detector `spec` (zoo ModelSpec: output names and head).

    `annotation`: a COCO json with the samples' real boxes; unless `weights="random"` both sides are
    also scored against it (real mAP delta).
    """
    acc = Accumulator(spec, thresholds, weights)
    with reference, candidate:
        _check_outputs(reference, candidate, acc.names)
        fixed = {r.static_batch for r in (reference, candidate)} - {None}
        if len(fixed) > 1:
            raise ValueError(f"the two models have different static batches {sorted(fixed)}")
        step = fixed.pop() if fixed else batch
        for records, feeds, real in samples.batches(reference.inputs, step):
            sides = [runner.infer(feeds) for runner in (reference, candidate)]
            acc.add(records, *([np.asarray(out[n])[:real] for n in acc.names] for out in sides))
            if progress is not None:
                progress(real)
    return acc.report(str(reference.model), str(candidate.model), annotation)


def measure_results(reference_dir, candidate_dir, images: Sequence, spec, *, thresholds: Thresholds = Thresholds(),
                    weights: str = "unknown", annotation=None, batch: int = 16) -> AgreementReport:
    """The same figures from two folders of results in the ais_bench layout (`infer` wrote them from the
    same inputs), over the `images` (manifest records) both have."""
    from stageio.reader import read_batches, scan_results

    outputs = spec.head.outputs
    ref_files = scan_results(reference_dir, images, outputs)
    both = [im for im in ref_files.present if im.stem in {i.stem for i in scan_results(candidate_dir, images,
                                                                                       outputs).present}]
    acc = Accumulator(spec, thresholds, weights)
    ref_files, cand_files = scan_results(reference_dir, both, outputs), scan_results(candidate_dir, both, outputs)
    for (records, ref), (_, cand) in zip(read_batches(ref_files, batch), read_batches(cand_files, batch)):
        acc.add(records, ref, cand)
    return acc.report(str(reference_dir), str(candidate_dir), annotation)


def _check_outputs(reference, candidate, names: Sequence[str]) -> None:
    for runner in (reference, candidate):
        have = [o.name for o in runner.outputs]
        missing = [n for n in names if n not in have]
        if missing:
            raise ValueError(f"{runner.model.name} has no output {', '.join(missing)} (it has {', '.join(have)})")


def _real_map(annotation, spec, ref_rows: np.ndarray, cand_rows: np.ndarray, images) -> dict:
    """COCO AP@[.5:.95] of both sides against the real annotations (labels mapped to category ids)."""
    from postprocess.evaluate import coco_stats, load_ground_truth

    gt = load_ground_truth(annotation)
    inv_map = spec.head.category_ids(gt.dataset.get("categories", []))
    ids = [im.id for im in images]
    scores = {}
    for side, rows in (("reference", ref_rows), ("candidate", cand_rows)):
        mapped = rows.copy()
        mapped[:, 6] = inv_map[rows[:, 6].astype(np.int64)]
        scores[side] = coco_stats(gt, mapped, ids, float32_rows=decoder_float32(spec))[0]
    return {**scores, "delta": scores["candidate"] - scores["reference"]}


def decoder_float32(spec) -> bool:
    from postprocess.heads import decoder_for

    return decoder_for(spec.head).float32_rows
