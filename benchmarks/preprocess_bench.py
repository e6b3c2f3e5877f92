"""Preprocess speed against the reference and against this machine's two floors, in one run.

    .venv/bin/python benchmarks/preprocess_bench.py [--images 917] [--repeat 2] [--workers N]

On the same generated COCO-like JPEGs (640x480-ish, quality 90, photo-like content), interleaved
`--repeat` times (best of the repeats is reported), whole processes timed from start to exit:

  reference      the Ascend ssd_preprocess.py transform as a plain script: one process, PIL open ->
                 RGB -> bilinear 300x300 -> ToTensor -> Normalize -> tofile (preprocess/reference.py)
  ssdconvert -w1 `ssdconvert preprocess --workers 1`
  ssdconvert -wN `ssdconvert preprocess --workers N` (default: every core)
  floor: decode  only decode + resize the same images, N processes, nothing written
  floor: write   only write the same bytes (one float32 tensor per image), one process

ssdconvert is within reach of its limit when it is close to the larger floor. Every run reports
user and system CPU seconds (the kernel's share is mostly writing); dirty pages are flushed
(os.sync) before every timed run, so no run pays for the previous one's write-back. Then, in one process, a
per-stage breakdown (start-up, annotation loading, decode, resize, normalise, write) and whether
JPEG draft decoding would change the output (it is used only if it does not). Outputs are
checked byte for byte against the reference. Results: benchmarks/results/preprocess.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent

SIZES = ((640, 480), (480, 640), (640, 427), (500, 375), (427, 640), (640, 360), (612, 612), (640, 512))

# Whole-process scripts: each is what its row measures and nothing else (imports included).
REFERENCE = """
import json, sys
from pathlib import Path
from preprocess.reference import reference_bin
ann, images, out = map(Path, sys.argv[1:4])
for record in json.loads(ann.read_text())["images"]:
    reference_bin(images / record["file_name"], out / (record["file_name"].split(".")[0] + ".bin"))
"""
DECODE_FLOOR = """
import json, sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from PIL import Image
def work(path):
    with Image.open(path) as image:
        image.convert("RGB").resize((300, 300), Image.Resampling.BILINEAR)
ann, images, workers = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
paths = [images / r["file_name"] for r in json.loads(ann.read_text())["images"]]
with ProcessPoolExecutor(workers) as pool:
    list(pool.map(work, paths, chunksize=16))
"""
WRITE_FLOOR = """
import json, sys
import numpy as np
from pathlib import Path
ann, out = Path(sys.argv[1]), Path(sys.argv[2])
data = np.random.default_rng(0).standard_normal((3, 300, 300)).astype(np.float32)
for record in json.loads(ann.read_text())["images"]:
    data.tofile(out / (record["file_name"].split(".")[0] + ".bin"))
"""


def cpu_summary() -> dict:
    """CPU model, cores and the SIMD flags this machine has (the figures depend on them)."""
    from ssdconvert.bench import machine_info
    from ssdconvert.cpu import cpu_features

    cpu = cpu_features()
    return {"model": cpu.model, "cores": machine_info()["usable_cores"], "flags": cpu.shown_flags()}


def make_dataset(root: Path, count: int, seed: int = 0) -> Path:
    """`count` photo-like JPEGs and an annotation json giving every image one box; reused if present."""
    from PIL import Image, ImageDraw

    ann = root / "annotations.json"
    if ann.exists() and json.loads(ann.read_text()).get("info", {}).get("count") == count:
        return ann
    shutil.rmtree(root, ignore_errors=True)
    (root / "images").mkdir(parents=True)
    rng = np.random.default_rng(seed)
    images, annotations = [], []
    for i in range(count):
        w, h = SIZES[i % len(SIZES)]
        y, x = np.mgrid[0:h, 0:w].astype(np.float32)
        base = rng.uniform(30, 220, 3) + x[..., None] * rng.uniform(-0.2, 0.2, 3) + y[..., None] * rng.uniform(-0.2, 0.2, 3)
        pixels = np.clip(base + rng.normal(0, 6, (h, w, 3)), 0, 255).astype(np.uint8)
        image = Image.fromarray(pixels)
        draw = ImageDraw.Draw(image)
        for _ in range(12):
            x0, y0 = int(rng.integers(0, w - 20)), int(rng.integers(0, h - 20))
            x1, y1 = x0 + int(rng.integers(10, w // 2)), y0 + int(rng.integers(10, h // 2))
            draw.ellipse([x0, y0, x1, y1], fill=tuple(int(c) for c in rng.integers(0, 256, 3)))
        name = f"{i + 1:012d}.jpg"
        image.save(root / "images" / name, quality=90)
        images.append({"id": i + 1, "file_name": name, "width": w, "height": h})
        annotations.append({"id": i + 1, "image_id": i + 1, "bbox": [0, 0, 10, 10], "category_id": 1})
    ann.write_text(json.dumps({"info": {"count": count}, "images": images, "annotations": annotations,
                               "categories": [{"id": 1, "name": "person"}]}))
    return ann


def timed(cmd: list[str], cwd: Path) -> dict:
    """Run a whole process; wall seconds and its user/system CPU (children included).

    The page cache's dirty data is flushed first (outside the timing): otherwise the gigabyte the
    previous contender wrote is still being written back, and the kernel charges that to this one."""
    os.sync()
    before = os.wait4 if hasattr(os, "wait4") else None
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if before is not None:
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out, err = proc.stdout.read(), proc.stderr.read()
        cpu = {"user": usage.ru_utime, "sys": usage.ru_stime}
    else:
        out, err = proc.communicate()
        cpu = {"user": float("nan"), "sys": float("nan")}
    wall = time.perf_counter() - started
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd[:4])} ... failed:\n{out}{err}")
    return {"wall": wall, **cpu}


def fresh(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def same_files(a: Path, b: Path) -> tuple[bool, int]:
    names = sorted(p.name for p in a.glob("*.bin"))
    if names != sorted(p.name for p in b.glob("*.bin")):
        return False, len(names)
    return all((a / n).read_bytes() == (b / n).read_bytes() for n in names), len(names)


def breakdown(ann: Path, image_dir: Path, scratch: Path, count: int = 200) -> dict[str, float]:
    """Milliseconds per image of each stage of ssdconvert's transform in one process, plus the
    fixed costs (interpreter + imports to the first command line, annotation loading) in seconds."""
    from preprocess.annotations import load_annotations
    from preprocess.spec import ImageTransform
    from preprocess.transform import Transformer, load_rgb
    from stageio.files import write_atomic

    startup = timed([sys.executable, "-m", "ssdconvert", "preprocess", "--help"], ROOT)["wall"]
    started = time.perf_counter()
    records = load_annotations(ann).images
    annotations = time.perf_counter() - started
    t = Transformer(ImageTransform())
    times = dict.fromkeys(["decode", "resize", "normalise", "write"], 0.0)
    names = [r.file_name for r in records[:count]]
    for name in names:
        t0 = time.perf_counter()
        image = load_rgb(str(image_dir / name))
        t1 = time.perf_counter()
        resized = t.resize(image)
        t2 = time.perf_counter()
        array = t.normalise(resized)
        t3 = time.perf_counter()
        write_atomic(scratch / "x.bin", array)
        t4 = time.perf_counter()
        for key, dt in zip(times, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            times[key] += dt
    return {"startup_s (ssdconvert preprocess --help)": startup, "annotation_loading_s": annotations,
            **{f"{k}_ms_per_image": 1e3 * v / len(names) for k, v in times.items()}}


def draft_decoding_is_exact(image_dir: Path, count: int = 100) -> dict:
    """Does JPEG draft mode (DCT scaling while decoding) change the 300x300 result? Checked, not assumed.

    Draft mode only scales when the image stays at least 300x300 after halving, so it applies to
    large images only; where it applies, the decoded pixels (and so the resize) differ.
    """
    from PIL import Image

    applies = changed = 0
    names = sorted(p.name for p in image_dir.glob("*.jpg"))[:count]
    for name in names:
        with Image.open(image_dir / name) as image:
            full = image.size
            image.draft("RGB", (300, 300))
            applies += image.size != full
            fast = image.convert("RGB").resize((300, 300), Image.Resampling.BILINEAR)
        with Image.open(image_dir / name) as image:
            exact = image.convert("RGB").resize((300, 300), Image.Resampling.BILINEAR)
        changed += not np.array_equal(np.asarray(fast), np.asarray(exact))
    verdict = ("not used: it changes the pixels of every image it applies to" if changed == applies and applies
               else f"changes {changed} of the {applies} images it applies to")
    return {"images": len(names), "draft_applies": applies, "changed_by_draft": changed, "verdict": verdict}


def markdown(result: dict) -> str:
    rows = result["runs"]
    ref = rows["reference"]["wall"]
    lines = [f"# Preprocess: {result['images']} JPEGs -> float32 bins ({result['cpu']['model']})", "",
             f"{result['cpu']['cores']} cores ({', '.join(result['cpu']['flags'])}), {result['workers']} worker(s), best of {result['repeat']}, "
             f"load average {result['load'][0]:.1f} -> {result['load'][1]:.1f}; whole processes.", "",
             "| run | wall s | images/s | vs reference | user s | sys s |", "|---|---|---|---|---|---|"]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['wall']:.2f} | {result['images'] / r['wall']:.0f} | {ref / r['wall']:.2f}x | "
                     f"{r['user']:.2f} | {r['sys']:.2f} |")
    floor = max(rows["floor: decode + resize"]["wall"], rows["floor: write"]["wall"])
    best = rows[f"ssdconvert --workers {result['workers']}"]["wall"]
    lines += ["", f"ssdconvert --workers {result['workers']}: {ref / best:.2f}x the reference, {best / floor:.2f}x "
              f"the larger floor ({floor:.2f} s). Output identical to the reference: {result['identical']}.", "",
              "| stage (one process) | value |", "|---|---|"]
    lines += [f"| {k} | {v:.3f} |" for k, v in result["breakdown"].items()]
    d = result["draft"]
    lines += ["", f"JPEG draft decoding: applies to {d['draft_applies']} of {d['images']} images (both sides >= 600 "
              f"px); {d['verdict']}.", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=917, help="generated JPEGs (>= 900 for the report)")
    parser.add_argument("--repeat", type=int, default=2, help="interleaved repetitions; the best of each is kept")
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)), help="N of the -wN row")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "ssdconvert-preprocess-bench")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "preprocess")
    parser.add_argument("--baseline", default=None, metavar="PYTHON",
                        help="the Python of another checkout (e.g. main's .venv/bin/python): its `ssdconvert "
                             "preprocess --workers N` is timed in the same rounds, for a before/after")
    args = parser.parse_args()

    load_before = os.getloadavg()[0]
    ann = make_dataset(args.workdir / "data", args.images)
    images = args.workdir / "data" / "images"
    py, cli = sys.executable, [sys.executable, "-m", "ssdconvert", "preprocess", "--val_annotation", str(ann),
                               "--data_root", str(images), "--no-progress", "--save_path"]
    runs = {
        "reference": lambda: timed([py, "-c", REFERENCE, str(ann), str(images), str(fresh(args.workdir / "ref"))],
                                   ROOT),
        "ssdconvert --workers 1": lambda: timed([*cli, str(fresh(args.workdir / "w1")), "--workers", "1"],
                                                args.workdir),
        f"ssdconvert --workers {args.workers}": lambda: timed(
            [*cli, str(fresh(args.workdir / "wn")), "--workers", str(args.workers)], args.workdir),
        **({f"baseline --workers {args.workers}": lambda: timed(
            [args.baseline, *cli[1:], str(fresh(args.workdir / "base")), "--workers", str(args.workers)],
            args.workdir)} if args.baseline else {}),
        "floor: decode + resize": lambda: timed([py, "-c", DECODE_FLOOR, str(ann), str(images), str(args.workers)],
                                                ROOT),
        "floor: write": lambda: timed([py, "-c", WRITE_FLOOR, str(ann), str(fresh(args.workdir / "floor"))], ROOT),
    }
    best: dict[str, dict] = {}
    for _ in range(args.repeat):
        for name, run in runs.items():
            r = run()
            if name not in best or r["wall"] < best[name]["wall"]:
                best[name] = r
    identical = all(same_files(args.workdir / "ref", args.workdir / d)[0]
                    for d in ("w1", "wn", *(["base"] if args.baseline else [])))
    result = {
        "images": args.images, "workers": args.workers, "baseline": args.baseline, "repeat": args.repeat, "identical": identical,
        "runs": {k: {m: round(v, 3) for m, v in r.items()} for k, r in best.items()},
        "breakdown": {k: round(v, 4) for k, v in breakdown(ann, images, args.workdir).items()},
        "draft": draft_decoding_is_exact(images),
        "cpu": cpu_summary(), "load": [load_before, os.getloadavg()[0]],
        "python": platform.python_version(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    text = markdown(result)
    args.out.with_suffix(".md").write_text(text)
    print(text)
    if not identical:
        raise SystemExit("outputs differ from the reference")


if __name__ == "__main__":
    main()
