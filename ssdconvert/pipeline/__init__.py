"""The main job: every stage in order inside one work directory, then one report.

data -> prepare-json -> preprocess -> export (+validation) -> per backend: compile -> infer ->
eval -> bench. A family with further export variants (Faster R-CNN's split variant, a composite
of two device models and a host stage) also gets each variant exported and, per backend,
compiled and benchmarked beside the main one. Each stage is keyed by a fingerprint of its inputs (StageCache), so a re-run
reuses what is finished and an interrupted run continues where it stopped. One run at a time per
work directory (a lock that names the process holding it).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

from ssdconvert import backends
from ssdconvert.backends.base import Backend, BackendOptions
from ssdconvert.errors import Interrupted, SsdConvertError
from ssdconvert.pipeline.cache import StageCache, StageResult, file_fingerprint

log = logging.getLogger(__name__)

ANNOTATIONS = Path("annotations") / "instances_val2017.json"
IMAGES = "val2017"
BBOX_ONLY = "bbox_only_instances_val2017.json"


@dataclass
class RunConfig:
    workdir: Path
    model_name: str = "ssd-resnet34"
    checkpoint: str | None = None
    backbone: str | None = None
    trust: bool = False
    seed: int = 0
    coco: Path | None = None  # <coco>/annotations/instances_val2017.json and <coco>/val2017/
    images: int = 24  # synthetic images when no --coco
    annotation: Path | None = None  # --annotation/--image-dir: any COCO-format annotation file and its images
    image_dir: Path | None = None
    calib_images: Path | None = None  # --calib: an image folder calibrating the INT8 builds (default: the eval bins)
    # --release LABEL=ONNX: a ready-made model (a vendor's INT8 release) run as is on ONNX Runtime beside the builds
    releases: dict[str, str] = field(default_factory=dict)
    backends: tuple[str, ...] = field(default_factory=lambda: tuple(backends.names()))
    # backend name -> its own options (Backend.configured: its chip, its compiler executable, ...); a backend not
    # named here keeps its defaults
    options: dict[str, BackendOptions] = field(default_factory=dict)
    batch_sizes: tuple[int, ...] = (1, 8, 16)
    bench_duration: float = 2.0
    workers: int | None = None
    backends_explicit: bool = False  # the user named the backends: one that cannot run is a failure
    # input canvas of a model whose input size is a choice (ModelSpec.at_canvas), or preprocess.spec.EXACT_CANVAS
    canvas: tuple[int, int] | str | None = None
    variants: tuple[str, ...] | None = None  # further export variants to bench (None: every one the family has)
    precisions: tuple[str, ...] | None = None  # fp32, fp16, bf16, int8; None: each backend's default
    gate: dict = field(default_factory=dict)  # agreement.Thresholds fields for the lower-precision gate
    cluster: str | None = None  # --cluster: infer and bench run on this Ray cluster (inside an open session)

    @property
    def infer_batch(self) -> int:
        return max(self.batch_sizes)


@dataclass
class PipelineReport:
    config: dict
    stages: list[StageResult] = field(default_factory=list)
    random_weights: bool = True
    notes: list[str] = field(default_factory=list)
    required: bool = False  # every backend was asked for by name: skipping one is a failure

    def stage(self, name: str) -> StageResult | None:
        return next((s for s in self.stages if s.name == name), None)


Say = Callable[[str], None]


LOCK_NAME = ".ssdconvert-run.lock"


def run_and_report(cfg: RunConfig, say: Say = log.info) -> tuple[PipelineReport, Path, Path, str]:
    """Run the pipeline and write its report while holding the work directory's lock.

    Returns (report, report.md, report.json, markdown text). See pipeline.report.problems for
    what makes a run fail.
    """
    from preprocess.lock import exclusive_lock
    from ssdconvert.fileio import ensure_writable_dir
    from ssdconvert.pipeline.report import write_report

    workdir = ensure_writable_dir(cfg.workdir)

    def refuse(holder: str) -> SsdConvertError:
        return SsdConvertError(f"another `ssdconvert run` ({holder}) is using {workdir}; wait for it or choose "
                               "another --workdir")

    with exclusive_lock(workdir / LOCK_NAME, refuse):
        report = run_pipeline(cfg, say)
        return (report, *write_report(report, workdir))


def run_pipeline(cfg: RunConfig, say: Say = log.info) -> PipelineReport:
    """Run (or reuse) every stage for `cfg`; returns the report data (see pipeline.report).

    Not locked: `run_and_report` holds the work directory's lock around this and the report.
    """
    from ssdconvert.zoo import get_spec

    unknown = [b for b in cfg.backends if not _known(b)]
    if unknown:
        raise SsdConvertError(f"unknown backend(s) {', '.join(unknown)}; choose from {', '.join(backends.names())}")
    targets = [b.configured(cfg.options) for b in dict.fromkeys(backends.get(b) for b in cfg.backends)]
    cfg = replace(cfg, backends=tuple(t.name for t in targets))
    spec = get_spec(cfg.model_name).with_canvas(cfg.canvas)
    unknown = sorted(set(cfg.variants or ()) - set(spec.composite))
    if unknown:
        raise SsdConvertError(f"{spec.name} has no variant {', '.join(unknown)} to bench beside its main export "
                              f"(it has: {', '.join(spec.composite) or 'none'})")
    if spec.dynamic_canvas:
        cfg = _exact_mode(cfg, targets)
    workdir = Path(cfg.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    cache = StageCache(workdir)
    report = PipelineReport(config={k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()},
                            random_weights=cfg.checkpoint is None and spec.load_source is None,  # ONNX sources: real
                            required=cfg.backends_explicit)

    def stage(name: str, inputs: dict, fn) -> StageResult:
        result = cache.lookup(name, inputs)
        if result is None:
            say(f"[{name}] running ...")
            try:
                result = cache.record(name, inputs, fn)
            except KeyboardInterrupt:  # stop the run: never recorded as done, never swallowed by a backend's row
                kept = sum(1 for s in report.stages if not s.skipped)
                raise Interrupted(f"interrupted by the user during [{name}]; the {kept} finished stage(s) are kept "
                                  f"in {workdir}: run the same command again to resume from there") from None
        report.stages.append(result)
        say(f"[{name}] {'reused (inputs unchanged)' if result.reused else f'{result.seconds:.1f} s'}: {result.figure}")
        return result

    data = stage("data", _data_inputs(cfg), lambda: _data(cfg, workdir))
    annotation, image_dir = Path(data.data["annotation"]), Path(data.data["images"])
    prep = stage("prepare-json", {"annotation": file_fingerprint(annotation), "data": data.key},
                 lambda: _prepare_json(annotation, workdir / "annotations" / BBOX_ONLY))
    pre = stage("preprocess", {"annotation": prep.key, "images": str(image_dir), "model": spec.name,
                               "transform": asdict(spec.transform)},
                lambda: _preprocess(spec, Path(prep.outputs[0]), image_dir, workdir / "ssd_bin", cfg.workers,
                                    rebuild=cache.recorded("preprocess")))
    calib = pre
    if cfg.calib_images is not None:
        calib = stage("preprocess-calib", {"images": str(Path(cfg.calib_images).resolve()), "model": spec.name,
                                           "transform": asdict(spec.transform)},
                      lambda: _preprocess(spec, None, Path(cfg.calib_images), workdir / "calib_bin", cfg.workers,
                                          rebuild=cache.recorded("preprocess-calib")))
    exp = stage("export", _export_inputs(cfg), lambda: _export(cfg, spec, workdir))
    onnx = Path(exp.outputs[0])
    variants = {}
    for variant in (spec.composite if cfg.variants is None else cfg.variants):
        done = stage(f"export-{variant}", {**_export_inputs(cfg), "variant": variant},
                     lambda variant=variant: _export(cfg, spec, workdir, variant))
        variants[variant] = (Path(done.outputs[0]), done.key)

    runs = _BackendRuns(cfg, spec, workdir, stage, report, say, pre, onnx, exp.key, calib)
    for target in targets:
        if not target.dynamic_image_size and spec.dynamic_canvas:
            note = f"{target.name} skipped: it needs the fixed canvas (the exact mode runs on the CPU backends)"
            report.stages.append(StageResult(f"compile:{target.name}", "", 0.0, note, skipped=True))
            say(f"[compile:{target.name}] {note}")
            continue
        for precision in cfg.precisions or (target.default_precision,):
            runs.at_precision(target, precision)
        for variant, (model, key) in variants.items():  # at the backend's default precision
            runs.variant(target, variant, model, key)
    for name, path in cfg.releases.items():
        runs.release(name, Path(path))
    return report


def label(target: Backend, precision: str) -> str:
    """A backend at its default precision keeps its name; another precision is `<name>@<precision>`."""
    return target.name if precision == target.default_precision else f"{target.name}@{precision}"


def split_label(text: str) -> tuple[str, str]:
    """(backend, precision) of a label (the default precision when the label names none); a variant's
    label (`onnxruntime:split`) keeps its variant in the backend part."""
    name, _, precision = text.partition("@")
    return name, precision or backends.get(name.partition(":")[0]).default_precision


def _exact_mode(cfg: RunConfig, targets: list[Backend]) -> RunConfig:
    """The exact mode (each image at its own size): batch 1, no variant (they need a fixed canvas), and the
    backends that take any image size; one the user named that cannot is refused."""
    if cfg.batch_sizes != (1,):
        raise SsdConvertError(f"the exact mode (--canvas exact) runs batch 1 only, not --bs "
                              f"{','.join(map(str, cfg.batch_sizes))}; a batch needs a fixed canvas (--canvas HxW)")
    if cfg.variants:
        raise SsdConvertError(f"the {', '.join(cfg.variants)} variant needs a fixed canvas; the exact mode exports "
                              "the main graph only (--variants '')")
    if cfg.backends_explicit:
        for target in targets:
            target.check_image_size(True, "--canvas exact")
    return replace(cfg, variants=())


def _known(name: str) -> bool:
    try:
        backends.resolve(name)
    except SsdConvertError:
        return False
    return True


@dataclass(frozen=True)
class _Candidate:
    """A lower-precision model the accuracy gate judges."""

    onnx: Path  # the FP32 export it was built from
    target: Backend
    model: Path  # what it runs
    precision: str
    compare_dir: Path  # where the layer-wise comparison of a model that fails the gate goes


@dataclass
class _BackendRuns:
    """Each backend's stages (compile -> infer -> eval -> gate -> bench) after the shared ones of one run."""

    cfg: RunConfig
    spec: object  # the zoo ModelSpec at the run's canvas
    workdir: Path
    stage: Callable[[str, dict, Callable], StageResult]
    report: PipelineReport
    say: Say
    pre: StageResult  # the preprocessed bins
    onnx: Path  # the main export
    export_key: str
    calib: StageResult  # the bins that calibrate INT8 builds (--calib's folder, else the evaluated bins)

    @property
    def bins(self) -> Path:
        return Path(self.pre.outputs[0])

    @property
    def calib_bins(self) -> Path:
        return Path(self.calib.outputs[0])

    def at_precision(self, target: Backend, precision: str) -> None:
        """One backend at one precision: skipped with the reason where it cannot, else every stage (a stage that
        fails is reported and ends this backend's row)."""
        name = label(target, precision)
        missing = target.missing()
        why = missing or target.precision_refusal(precision)
        if why:
            note = f"{name} skipped: {why}"
            self.report.stages.append(StageResult(f"compile:{name}", "", 0.0, note, skipped=True,
                                                  unsupported=not missing))
            self.say(f"[compile:{name}] {note}")
            return
        try:
            self._stages(target, precision, name)
        except SsdConvertError as exc:
            failed = next(s for s in ("compile", "infer", "eval", "bench") if self.report.stage(f"{s}:{name}") is None)
            self.report.stages.append(StageResult(f"{failed}:{name}", "", 0.0, f"FAILED: {exc}", skipped=True,
                                                  failed=True))
            self.say(f"[{failed}:{name}] FAILED: {exc}")

    def _stages(self, target: Backend, precision: str, name: str) -> None:
        cfg, stage, workdir, bins = self.cfg, self.stage, self.workdir, self.bins
        inputs = {"onnx": self.export_key, "batch": cfg.infer_batch, "options": _build_options(target)}
        if precision != target.default_precision:
            inputs.update(precision=precision, calib=self.calib.key)
        comp = stage(f"compile:{name}", inputs,
                     lambda: _compile(target, self.onnx, workdir, cfg, precision, self.calib_bins))
        model = Path(comp.outputs[0])
        inf = stage(f"infer:{name}", {"model": comp.key, "inputs": self.pre.key, "batch": cfg.infer_batch},
                    lambda: _infer(model, target, bins, workdir / "results" / name, cfg.infer_batch, cfg.cluster))
        stage(f"eval:{name}", {"results": inf.key, "model": self.spec.name},
              lambda: _eval(Path(inf.outputs[0]), self.spec.name, workdir / "eval" / name, self.report.random_weights))
        reference = self.report.stage(f"infer:{backends.REFERENCE}")
        if precision != "fp32" and reference is not None and not reference.skipped:
            candidate = _Candidate(self.onnx, target, model, precision, workdir / "compare" / name)
            stage(f"gate:{name}", {"results": inf.key, "reference": reference.key, "thresholds": cfg.gate},
                  lambda: _gate(Path(reference.outputs[0]), Path(inf.outputs[0]), bins, self.spec, cfg,
                                self.report.random_weights, workdir / "gate" / f"{name}.json", candidate))
        bench_model = self.onnx if target.builds_per_batch else model  # one static model per batch size
        stage(f"bench:{name}", {"model": comp.key, "bs": list(cfg.batch_sizes), "duration": cfg.bench_duration},
              lambda: _bench(bench_model, name, cfg, self.spec, workdir / "bench", target, precision,
                             self.calib_bins))

    def release(self, tag: str, model: Path) -> None:
        """A ready-made model (a vendor's INT8 release), run as is on ONNX Runtime: infer, eval, bench, reported
        as `onnxruntime@<tag>` with its AP delta to ONNX Runtime FP32."""
        cfg, stage, name = self.cfg, self.stage, f"{backends.REFERENCE}@{tag}"
        target = backends.get(backends.REFERENCE).configured(cfg.options)
        from ssdconvert.fileio import sha256_of

        try:
            if not model.is_file():
                raise SsdConvertError(f"--release {tag}={model}: no such file")
            key = {"release": sha256_of(model), "batch": cfg.infer_batch}
            inf = stage(f"infer:{name}", {**key, "inputs": self.pre.key},
                        lambda: _infer(model, target, self.bins, self.workdir / "results" / name, cfg.infer_batch,
                                       cfg.cluster))
            stage(f"eval:{name}", {"results": inf.key, "model": self.spec.name},
                  lambda: _eval(Path(inf.outputs[0]), self.spec.name, self.workdir / "eval" / name, False))
            stage(f"bench:{name}", {**key, "bs": list(cfg.batch_sizes), "duration": cfg.bench_duration},
                  lambda: _bench(model, name, cfg, self.spec, self.workdir / "bench", target,
                                 target.default_precision, None))
        except SsdConvertError as exc:
            failed = next(s for s in ("infer", "eval", "bench") if self.report.stage(f"{s}:{name}") is None)
            self.report.stages.append(StageResult(f"{failed}:{name}", "", 0.0, f"FAILED: {exc}", skipped=True,
                                                  failed=True))
            self.say(f"[{failed}:{name}] FAILED: {exc}")

    def variant(self, target: Backend, variant: str, model: Path, export_key: str) -> None:
        """A further export variant on one backend, at its default precision: compiled (where the backend
        compiles) and benchmarked."""
        name, stage, cfg = target.name, self.stage, self.cfg
        if self.report.stage(f"compile:{name}") is None or self.report.stage(f"compile:{name}").skipped:
            return  # the backend cannot run here: already reported
        tag = f"{name}:{variant}"
        precision = target.default_precision
        try:
            comp = stage(f"compile:{tag}", {"model": export_key, "batch": cfg.infer_batch,
                                            "options": _build_options(target)},
                         lambda: _compile(target, model, self.workdir / variant, cfg, precision, None))
            bench_model = model if target.builds_per_batch else Path(comp.outputs[0])
            stage(f"bench:{tag}", {"model": comp.key, "bs": list(cfg.batch_sizes), "duration": cfg.bench_duration},
                  lambda: _bench(bench_model, f"{name}_{variant}", cfg, self.spec, self.workdir / "bench", target,
                                 precision, None))
        except SsdConvertError as exc:
            failed = "compile" if self.report.stage(f"compile:{tag}") is None else "bench"
            self.report.stages.append(StageResult(f"{failed}:{tag}", "", 0.0, f"FAILED: {exc}", skipped=True,
                                                  failed=True))


def _build_options(target: Backend) -> dict:
    """What of a backend's options its builds depend on (its compiler's location does not count)."""
    return {k: v for k, v in asdict(target.options).items() if k != "tool"}


# -- stage bodies: each returns (one-line figure, report data, output paths) ----------------------

def _data_inputs(cfg: RunConfig) -> dict:
    from ssdconvert import __version__

    if cfg.annotation is not None:
        return {"annotation": file_fingerprint(Path(cfg.annotation)) if Path(cfg.annotation).is_file() else None,
                "images": str(Path(cfg.image_dir).resolve())}
    if cfg.coco is None:
        return {"synthetic": True, "images": cfg.images, "seed": cfg.seed, "ssdconvert": __version__}
    root = Path(cfg.coco)
    return {"coco": str(root.resolve()), "annotation": file_fingerprint(root / ANNOTATIONS)
            if (root / ANNOTATIONS).is_file() else None}


def _data(cfg: RunConfig, workdir: Path):
    if cfg.annotation is not None:
        annotation, images = Path(cfg.annotation), Path(cfg.image_dir)
        if not annotation.is_file() or not images.is_dir():
            raise SsdConvertError(f"--annotation {annotation} must be a file and --image-dir {images} a folder")
        return f"{annotation.name} on {images}", {"annotation": str(annotation), "images": str(images)}, [annotation]
    if cfg.coco is None:
        from ssdconvert.synth import generate

        ds = generate(workdir / "data", images=cfg.images, seed=cfg.seed, overwrite=True)
        figure = f"synthetic COCO: {ds.images} images ({ds.annotated_images} annotated), {ds.annotations} boxes"
        return figure, {"annotation": str(ds.annotation_file), "images": str(ds.image_dir)}, [ds.annotation_file]
    root = Path(cfg.coco)
    annotation, images = root / ANNOTATIONS, root / IMAGES
    if not annotation.is_file() or not images.is_dir():
        raise SsdConvertError(f"--coco {root} must contain {ANNOTATIONS} and {IMAGES}/")
    return f"COCO at {root}", {"annotation": str(annotation), "images": str(images)}, [annotation]


def _prepare_json(annotation: Path, target: Path):
    from preprocess.prepare_json import prepare_json

    s = prepare_json(annotation, target, keep_keys=True)
    return (f"{target.name}: {s.images} images, {s.annotations} annotations (--keep-keys: S/M/L AP meaningless)",
            {"images": s.images, "annotations": s.annotations}, [target])


def _preprocess(spec, annotation: Path | None, images: Path, save: Path, workers: int | None, rebuild: bool):
    """`rebuild`: the stage ran before with other inputs, so `save` holds stale tensors (other images,
    another data root); otherwise an interrupted run resumes where it stopped."""
    import shutil

    from preprocess.run import preprocess_dataset

    if rebuild:
        shutil.rmtree(save, ignore_errors=True)
    s = preprocess_dataset(annotation, images, save, spec.transform, model=spec.name, input_name=spec.input.name,
                           workers=workers, all_images=spec.head.evaluated_images == "all", progress=False)
    if s.failed:
        raise SsdConvertError(f"preprocess failed for {s.failed} image(s); see {s.manifest_path}")
    return (f"{s.images} input tensors ({s.skipped_without_annotations} images without annotations skipped)",
            {"images": s.images, "skipped": s.skipped_without_annotations}, [save, s.manifest_path])


def _export_inputs(cfg: RunConfig) -> dict:
    from ssdconvert import __version__
    from ssdconvert.fileio import sha256_of

    return {"model": cfg.model_name, "seed": cfg.seed, "bs": cfg.infer_batch, "ssdconvert": __version__,
            "checkpoint": sha256_of(cfg.checkpoint) if cfg.checkpoint else None,
            "backbone": sha256_of(cfg.backbone) if cfg.backbone else None, "canvas": cfg.canvas}


def _export(cfg: RunConfig, spec, workdir: Path, variant: str | None = None):
    from ssdconvert.checkpoints import build_model
    from ssdconvert.export import export_model

    model, weights = build_model(spec, cfg.checkpoint, backbone=cfg.backbone, trust=cfg.trust, seed=cfg.seed)
    name = spec.name.replace("-", "_") + (f"_{variant}" if variant else "")
    r = export_model(model, spec, workdir / f"{name}.onnx", weights=weights, batch=cfg.infer_batch, variant=variant)
    validated = "batch 1, two image sizes" if spec.dynamic_canvas else f"bs 1 and {cfg.infer_batch}"
    return f"{r.figure()} ({validated})", {**r.metrics(), "weights": weights.label()}, [r.onnx_path]


def _compile(target: Backend, onnx: Path, workdir: Path, cfg: RunConfig, precision: str, bins: Path | None):
    default = precision == target.default_precision
    # absolute paths: the INT8 builders quantize inside a staging folder of their own (its cwd)
    onnx, workdir = onnx.resolve(), workdir.resolve()
    artefacts = backends.for_model(onnx, target).compile(onnx, workdir, batch=cfg.infer_batch,
                                                        precision=None if default else precision,
                                                        calib=None if default or bins is None else bins.resolve())
    what = "uses the ONNX directly" if artefacts == [onnx] else f"built {artefacts[0].name}"
    return f"{what} ({precision})", {"artefacts": [str(a) for a in artefacts], "precision": precision}, artefacts


def _gate(reference: Path, results: Path, bins: Path, spec, cfg: RunConfig, random_weights: bool, target: Path,
          candidate: _Candidate):
    """The accuracy gate of a lower-precision model: its outputs against ONNX Runtime FP32's, from the
    result folders both wrote for the same inputs (agreement.measure_results). A model that fails it
    is compared layer by layer (`ssdconvert compare`, 2 images) where its backend exposes layers."""
    from preprocess.manifest import read_manifest
    from ssdconvert.agreement import Thresholds, measure_results
    from ssdconvert.fileio import write_json

    manifest = read_manifest(bins)
    annotation = Path(manifest.annotation_path)
    report = measure_results(reference, results, manifest.images, spec, thresholds=Thresholds(**cfg.gate),
                             weights="random" if random_weights else "trained",
                             annotation=annotation if annotation.is_file() else None)
    data = report.to_dict()
    worst = report.worst
    figure = (f"{'passed' if report.passed else 'FAILED'}: worst output {worst.line() if worst else '–'}; "
              f"{report.detections.line() if report.detections else ''}")
    if not report.passed:
        data["compare"], found = _compare_failed(candidate, bins, spec, Thresholds(**cfg.gate))
        figure += f"; {found}"
    path = write_json(target, data)
    return figure, data, [path]


def _compare_failed(candidate: _Candidate, bins: Path, spec, thresholds) -> tuple[str | None, str]:
    """(compare.json path or None, one line) for a model that failed the gate."""
    from ssdconvert.compare import Side, compare_models, write_outputs

    target, model, precision = candidate.target, candidate.model, candidate.precision
    if not target.exposes_layers:
        return None, (f"no layer-wise comparison for {target.label} here: dump its tensors on the device and run "
                      "`ssdconvert compare` on the dump folder (docs/commands/compare.md)")
    side = Side(f"{target.name}:{model}:{precision}", Path(model), target.name, precision)
    try:
        found = compare_models(str(candidate.onnx), side, bins, images=2, thresholds=thresholds, model_name=spec.name)
    except SsdConvertError as exc:
        return None, f"layer-wise comparison failed: {exc}"
    js, _ = write_outputs(found, candidate.compare_dir)
    return str(js), f"{found.verdict()} (layer report {js})"


def _infer(model: Path, backend: Backend, inputs: Path, output: Path, batch: int, cluster: str | None = None):
    if cluster:
        from ssdconvert.cluster.shards import run_infer
    else:
        from ssdconvert.infer import run_infer

    r = run_infer(model, inputs, output, backend=backend, batchsize=batch, progress=False)
    figure = (f"{r.files} images at batch {r.batch}: {r.throughput:.1f} samples/s compute, "
              f"{r.end_to_end_throughput:.1f} end to end")
    return figure, {"throughput": r.throughput, "files": r.files}, [r.output_dir, r.summary_path]


def _eval(results: Path, model_name: str, out: Path, random_weights: bool):
    from ssdconvert.evaluation import evaluate_results
    from ssdconvert.fileio import write_json

    r = evaluate_results(results, model_name=model_name, detections_path=out / "detections.json")
    report_path = write_json(out / "eval.json", r.to_dict())
    label = " (random weights: meaningless)" if random_weights else ""
    return (f"AP@[.5:.95] {r.ap:.4f}{label} on {r.images} images, {r.detections} detections",
            {"stats": r.stats, "images": r.images}, [report_path])


def _bench(model: Path, name: str, cfg: RunConfig, spec, out: Path, backend: Backend, precision: str,
           bins: Path | None):
    if cfg.cluster:
        from ssdconvert.cluster.sweep import run_bench
    else:
        from ssdconvert.bench import run_bench

    default = precision == backend.default_precision
    r = run_bench(model, backend=backend, batch_sizes=cfg.batch_sizes, duration=cfg.bench_duration,
                  output_dir=out, name=name.replace("@", "_"), flops_per_image=spec.flops_per_image,
                  precision=None if default else precision, calib=None if default else bins, feeds=spec.feeds_for)
    rows = {row.batch_size: row.throughput for row in r.ok_rows}
    if not rows:  # a failed stage (reported, re-run next time), not an empty sweep kept as done
        raise SsdConvertError(f"no batch size ran: {r.failure}")
    best = max(rows.items(), key=lambda kv: kv[1])
    figure = f"best {best[1]:.1f} samples/s at batch {best[0]}"
    if r.stopped_early:
        figure += f"; stopped early: {r.failure}"
    where = {row.batch_size: f"{row.host} {row.device}" for row in r.ok_rows if row.host}  # --cluster only
    return (figure, {"throughput": rows, "label": r.label, "outputs": r.outputs, **({"where": where} if where else {})},
            [Path(p) for p in r.outputs.values()])
