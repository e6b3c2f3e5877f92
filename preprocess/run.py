"""The preprocess stage end to end: plan, convert images in a process pool, write manifest.json last."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

import PIL

from preprocess import outdir
from preprocess.annotations import Job, load_annotations, plan_jobs, select_images
from preprocess.converter import Converter
from preprocess.errors import ImageFailure, PreprocessError
from preprocess.manifest import ImageRecord, InputInfo, Manifest, SideInput
from preprocess.spec import ImageTransform
from stageio.files import is_complete, remove_temporaries, write_atomic

MAX_BATCH = 32  # images per pool task
PR_SET_PDEATHSIG = 1  # linux/prctl.h
PARENT_POLL_S = 0.5  # where prctl is unavailable, workers check their parent this often


@dataclass(frozen=True)
class Outcome:
    """Result of one image: written (with its decoded width, height) or failed (with a reason)."""

    index: int
    reason: str = ""
    size: tuple[int, int] | None = None

    @property
    def ok(self) -> bool:
        return not self.reason


@dataclass
class Summary:
    save_path: Path
    manifest_path: Path
    input: InputInfo  # what each image's .bin holds
    workers: int
    written: int
    reused: int  # complete .bin files from an earlier run, kept
    skipped_without_annotations: int
    failures: list[dict]  # {"id", "file_name", "reason"}, json order
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    side_inputs: tuple[SideInput, ...] = ()  # further model inputs written into subfolders of save_path

    @property
    def failed(self) -> int:
        return len(self.failures)

    @property
    def images(self) -> int:
        return self.written + self.reused


def default_workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


# -- per image (runs in the workers) ------------------------------------------------------------

_WORKER: Converter | None = None


def _init_worker(transform: ImageTransform, dtype: str, parent: int) -> None:
    global _WORKER
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is handled once, in the parent
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the pool may terminate workers; the parent's handler is not theirs
    _die_with(parent)
    _WORKER = transform.converter(dtype)


def _die_with(parent: int) -> None:
    """End this worker when `parent` dies: a killed parent would leave it blocked on its task queue forever.

    Linux: the kernel sends SIGKILL (prctl PR_SET_PDEATHSIG). Elsewhere a daemon thread polls getppid().
    A worker killed mid-write leaves only a temporary file, which the next run removes.
    """
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0:
            if os.getppid() != parent:  # the parent died before prctl took effect
                os._exit(1)
            return

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_S)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _convert(converter: Converter, index: int, source: str, targets: tuple[str, ...]) -> Outcome:
    """Decode, transform and write one image (its tensor and any side-input tensors). Bad images fail
    softly; write errors propagate."""
    try:
        converted = converter.convert(source)
    except ImageFailure as exc:
        return Outcome(index, str(exc))
    except MemoryError:
        return Outcome(index, "out of memory while decoding")
    for target, tensor in zip(targets, converted.tensors):
        write_atomic(Path(target), tensor)
    return Outcome(index, size=converted.decoded_size)


def _convert_batch(batch: list[tuple[int, str, tuple[str, ...]]]) -> list[Outcome]:
    assert _WORKER is not None
    return [_convert(_WORKER, *item) for item in batch]


def _progress_bar(total: int, enabled: bool | None):
    from tqdm import tqdm

    return tqdm(total=total, unit="img", desc="preprocess", disable=(None if enabled is None else not enabled),
                dynamic_ncols=True, leave=False)


def _run_items(items: list[tuple[int, str, tuple[str, ...]]], transform: ImageTransform, dtype: str, workers: int,
               progress: bool | None) -> list[Outcome]:
    """Convert every item; in-process for one worker, else over a process pool."""
    if workers <= 1:
        converter = transform.converter(dtype)
        outcomes = []
        with _progress_bar(len(items), progress) as bar:
            for item in items:
                outcomes.append(_convert(converter, *item))
                bar.update()
        return outcomes
    size = max(1, min(MAX_BATCH, len(items) // (workers * 8)))
    batches = [items[i:i + size] for i in range(0, len(items), size)]
    fork = "fork" in multiprocessing.get_all_start_methods() and sys.platform.startswith("linux")
    context = multiprocessing.get_context("fork" if fork else None)
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                               initargs=(transform, dtype, os.getpid()))
    try:
        futures = [pool.submit(_convert_batch, batch) for batch in batches]  # forks before tqdm's thread starts
        outcomes = []
        with _progress_bar(len(items), progress) as bar:
            for future in as_completed(futures):
                done = future.result()
                outcomes += done
                bar.update(len(done))
        return outcomes
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


# -- the stage ----------------------------------------------------------------------------------

def preprocess_dataset(annotation_file: str | Path, data_root: str | Path, save_path: str | Path,
                       transform: ImageTransform, *, model: str = "", input_name: str = "image",
                       dtype: str = "float32", workers: int | None = None, all_images: bool = False,
                       overwrite: bool = False, progress: bool | None = None) -> Summary:
    """Write <stem>.bin for every selected image and manifest.json (last) into `save_path`.

    `transform` is any transform with a `converter` (preprocess.converter): an ImageTransform, or a
    ResizePadTransform, which also writes its side input `im_info/<stem>.bin` per image and records
    each image's geometry. Images without annotations are skipped unless `all_images`. Complete .bin files of an earlier
    run with the same settings are kept unless `overwrite`. Bad images do not stop the run: they
    are listed in `Summary.failures` and in the manifest. Raises PreprocessError for problems the
    user must fix first (annotation file, directories, settings clash, interruption).
    """
    started = time.perf_counter()
    converter = transform.converter(dtype)  # refuses a dtype or setting it cannot reproduce
    root = Path(data_root)
    if not root.is_dir():
        raise PreprocessError(f"--data_root {root} is not a directory")
    annotations = load_annotations(annotation_file)
    selected, skipped = select_images(annotations, all_images)
    jobs, refused = plan_jobs(selected, root)
    save = Path(save_path)
    outdir.prepare(save)

    sides = tuple(converter.side_inputs)
    manifest = Manifest(
        model=model, input=converter.input_info(input_name),
        annotation_path=str(annotations.path.resolve()), annotation_sha256=annotations.sha256,
        data_root=os.path.realpath(root), skipped_without_annotations=skipped, pillow_version=PIL.__version__,
        opencv_version=_opencv_version() if transform.decoder == "cv2" else "", side_inputs=list(sides),
    )
    with outdir.exclusive(save):
        plan = _plan(save, manifest, converter, jobs, overwrite)
        items = [(k, job.source, tuple(map(str, plan.targets[k])))
                 for k, job in enumerate(jobs) if k not in plan.reused]
        workers = max(1, min(workers or default_workers(), len(items)))
        outcomes = _convert_items(items, transform, dtype, workers, progress, save)
        _record(manifest, jobs, refused, outcomes, plan, converter)
        warnings = plan.warnings + _warnings(annotations.dangling, jobs, outcomes, save, manifest)
        manifest_path = outdir.finish(save, manifest)

    return Summary(save, manifest_path, manifest.input, workers,
                   written=len(items) - sum(not o.ok for o in outcomes.values()), reused=len(plan.reused),
                   skipped_without_annotations=skipped, failures=manifest.failures, warnings=warnings,
                   seconds=time.perf_counter() - started, side_inputs=sides)


@dataclass
class _Plan:
    """Where each job's files go, which complete ones an earlier run left, and what it left to say."""

    targets: list[tuple[Path, ...]]  # per job: the image's .bin, then each side input's
    reused: set[int]
    previous: dict[str, tuple[int, int]]  # decoded sizes recorded for reusable .bin files
    warnings: list[str]


def _plan(save: Path, manifest: Manifest, converter: Converter, jobs: list[Job], overwrite: bool) -> _Plan:
    """Check that the folder may be resumed with these settings, clean it up and record the run's settings."""
    settings = outdir.settings_of(manifest)
    outdir.check_resumable(save, settings, overwrite)
    sides = manifest.side_inputs
    for side in sides:
        (save / side.folder).mkdir(exist_ok=True)
    warnings = []
    if removed := sum(remove_temporaries(folder) for folder in (save, *(save / s.folder for s in sides))):
        warnings.append(f"removed {removed} partial temporary file(s) left by an interrupted run")
    previous = outdir.previous_sizes(save)  # decoded sizes of reusable .bin files
    outdir.begin(save, settings)

    folders = (save, *(save / side.folder for side in sides))
    targets = [tuple(folder / f"{job.stem}.bin" for folder in folders) for job in jobs]

    def sizes(k: int) -> tuple[int, ...]:  # an image's file size can depend on its decoded size (exact mode)
        decoded = _decoded_size(targets[k][0], previous, jobs[k])
        return converter.image_nbytes(decoded), *(side.tensor.nbytes for side in sides)

    reused = set() if overwrite else {k for k, paths in enumerate(targets)
                                      if all(is_complete(p, n) for p, n in zip(paths, sizes(k)))}
    return _Plan(targets, reused, previous, warnings)


def _convert_items(items: list[tuple[int, str, tuple[str, ...]]], transform: ImageTransform, dtype: str,
                   workers: int, progress: bool | None, save: Path) -> dict[int, Outcome]:
    """Every item's outcome by job index; an interruption or a write error keeps what is finished."""
    try:
        return {o.index: o for o in _run_items(items, transform, dtype, workers, progress)}
    except KeyboardInterrupt:
        raise PreprocessError(f"interrupted; finished .bin files in {save} are kept, "
                              "run the same command again to resume") from None
    except BrokenProcessPool:
        raise PreprocessError("a worker process died (out of memory?); finished .bin files are kept, "
                              "run the same command again to resume") from None
    except OSError as exc:
        raise PreprocessError(f"cannot write to {save}: {exc.strerror or exc}; finished .bin files are "
                              "kept, run the same command again to resume") from None


def _record(manifest: Manifest, jobs: list[Job], refused: list, outcomes: dict[int, Outcome], plan: _Plan,
            converter: Converter) -> None:
    """List every written (or reused) image and every failure in the manifest; drop a failed image's files."""
    failures = list(refused)
    for k, job in enumerate(jobs):
        outcome = outcomes.get(k)
        if outcome is not None and not outcome.ok:
            failures.append((job.image, outcome.reason))
            for path in plan.targets[k]:
                path.unlink(missing_ok=True)  # an older .bin of this image is not this run's output
        else:
            size = outcome.size if outcome is not None else _decoded_size(plan.targets[k][0], plan.previous, job)
            manifest.images.append(ImageRecord(job.image.id, job.image.file_name, job.stem,
                                               job.image.width, job.image.height, *size,
                                               **converter.geometry(size)))
    failures.sort(key=lambda f: f[0].index)
    manifest.failures = [{"id": image.id, "file_name": image.file_name, "reason": reason}
                         for image, reason in failures]


def _opencv_version() -> str:
    import cv2

    return cv2.__version__


def _decoded_size(target: Path, previous: dict, job: Job) -> tuple[int | None, int | None]:
    """Decoded size of an image whose .bin is reused: from the previous manifest, else the json size."""
    return previous.get(target.stem, (job.image.width, job.image.height))


def _warnings(dangling: int, jobs: list[Job], outcomes: dict[int, Outcome], save: Path,
              manifest: Manifest) -> list[str]:
    """Things that do not stop the run but that the user should know."""
    notes = []
    if dangling:
        notes.append(f"{dangling} annotation(s) refer to image ids that are not in 'images' (ignored)")
    resized = [(jobs[k].image, o.size) for k, o in sorted(outcomes.items())
               if o.ok and o.size != (jobs[k].image.width, jobs[k].image.height)]
    if resized:
        image, (w, h) = resized[0]
        notes.append(f"{len(resized)} image(s) differ from their json width/height (first: {image.file_name} is "
                     f"{w}x{h}, json says {image.width}x{image.height}); eval scales boxes by the json values")
    stray = outdir.stray_bins(save, {r.stem for r in manifest.images})
    if stray:
        notes.append(f"{len(stray)} .bin file(s) in {save} are not in the manifest (first: {stray[0]}); "
                     "ais_bench reads every .bin in the directory, so remove them before inference")
    if int(PIL.__version__.split(".")[0]) >= 13:
        notes.append(f"Pillow {PIL.__version__}: bilinear rounding changed in 13.0, so pixels differ by "
                     "+-1 from the reference bins; install pillow<13 to reproduce them")
    return notes
