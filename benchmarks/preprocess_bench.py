"""Preprocess throughput: the single-process reference loop vs `ssdconvert preprocess`, same images, one run.

    .venv/bin/python benchmarks/preprocess_bench.py [--images 240] [--repeat 2] [--workers N]

Generates COCO-sized JPEGs (640x480-ish, quality 90, photo-like content), then, interleaved
`--repeat` times, times
  * the reference loop: what the Ascend ssd_preprocess.py does per image (PIL open -> RGB ->
    bilinear 300x300 -> ToTensor -> Normalize -> tofile), in numpy, one process;
  * `python -m ssdconvert preprocess ...` as a subprocess (wall clock, including interpreter start).
It checks that both wrote byte-identical files, prints images/s and the ratio (best of the
repeats), and a per-stage breakdown (decode, resize, normalise, write) measured in-process.
Results go to benchmarks/results/preprocess.json. Timings are wall clock: on a shared machine
they are noisy, so the load average before and after is recorded too.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import PIL
from PIL import Image, ImageDraw

from preprocess.reference import reference_bin
from preprocess.run import preprocess_dataset
from preprocess.spec import ImageTransform
from preprocess.transform import Transformer, load_rgb
from preprocess.writer import write_atomic

SIZES = ((640, 480), (480, 640), (640, 427), (500, 375), (427, 640), (640, 360), (612, 612), (640, 512))
ROOT = Path(__file__).resolve().parent.parent


def make_dataset(root: Path, count: int, seed: int = 0) -> Path:
    """`count` photo-like JPEGs and an annotation json giving every image one box; reused if present."""
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


def _cpu_seconds() -> float:
    """CPU time of this process plus its reaped children (pool workers are reaped at shutdown)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def reference_loop(ann: Path, image_dir: Path, out: Path) -> tuple[float, float]:
    """The Ascend script's loop, single process; returns (wall seconds, CPU seconds)."""
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    started, cpu = time.perf_counter(), _cpu_seconds()
    for record in json.loads(ann.read_text())["images"]:
        reference_bin(image_dir / record["file_name"], out / f"{record['file_name'].split('.')[0]}.bin")
    return time.perf_counter() - started, _cpu_seconds() - cpu


def stage_in_process(ann: Path, image_dir: Path, out: Path, workers: int | None) -> tuple[float, float]:
    """preprocess_dataset() called directly; returns (wall seconds, CPU seconds over all processes)."""
    shutil.rmtree(out, ignore_errors=True)
    started, cpu = time.perf_counter(), _cpu_seconds()
    preprocess_dataset(ann, image_dir, out, ImageTransform(), model="ssd-resnet34", workers=workers, progress=False)
    return time.perf_counter() - started, _cpu_seconds() - cpu


def cli_run(ann: Path, image_dir: Path, out: Path, workers: int | None) -> tuple[float, float, str]:
    """`ssdconvert preprocess` in a subprocess; returns (wall seconds, stage seconds it reports, output)."""
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "ssdconvert", "preprocess", "--val_annotation", str(ann), "--data_root",
           str(image_dir), "--save_path", str(out), "--no-progress"]
    if workers:
        cmd += ["--workers", str(workers)]
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=out.parent)
    wall = time.perf_counter() - started
    if proc.returncode:
        raise SystemExit(f"ssdconvert preprocess failed:\n{proc.stdout}{proc.stderr}")
    stage = float(re.search(r"images\) in ([0-9.]+) s", proc.stdout).group(1))
    return wall, stage, proc.stdout


def same_files(a: Path, b: Path) -> tuple[bool, int]:
    names = sorted(p.name for p in a.glob("*.bin"))
    if names != sorted(p.name for p in b.glob("*.bin")):
        return False, len(names)
    return all((a / n).read_bytes() == (b / n).read_bytes() for n in names), len(names)


def breakdown(image_dir: Path, files: list[str], scratch: Path) -> dict[str, float]:
    """Milliseconds per image for each stage of the fast path, and the reference's normalisation."""
    t = Transformer(ImageTransform())
    times = dict.fromkeys(["decode", "resize", "normalise", "write", "reference normalise"], 0.0)
    mean = np.asarray(ImageTransform().mean, np.float32)[:, None, None]
    std = np.asarray(ImageTransform().std, np.float32)[:, None, None]
    for name in files:
        t0 = time.perf_counter()
        image = load_rgb(str(image_dir / name))
        t1 = time.perf_counter()
        resized = t.resize(image)
        t2 = time.perf_counter()
        array = t.normalise(resized)
        t3 = time.perf_counter()
        write_atomic(scratch / "x.bin", array)
        t4 = time.perf_counter()
        x = np.array(resized, dtype=np.uint8).transpose(2, 0, 1).astype(np.float32) / np.float32(255)
        np.ascontiguousarray((x - mean) / std)
        t5 = time.perf_counter()
        for key, dt in zip(times, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)):
            times[key] += dt
    return {k: 1e3 * v / len(files) for k, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=240, help="number of generated JPEGs (>= 200 for the report)")
    parser.add_argument("--repeat", type=int, default=2, help="interleaved repetitions; the best of each is reported")
    parser.add_argument("--workers", type=int, default=None, help="ssdconvert --workers [default: all cores]")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "ssdconvert-preprocess-bench")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "preprocess.json")
    args = parser.parse_args()

    load_before = os.getloadavg()
    ann = make_dataset(args.workdir / "data", args.images)
    image_dir = args.workdir / "data" / "images"
    ref_out, cli_out = args.workdir / "ref_bin", args.workdir / "ssd_bin"
    ref_times, ref_cpus, cli_walls, cli_stages, fn_walls, fn_cpus = [], [], [], [], [], []
    for _ in range(args.repeat):
        wall, cpu = reference_loop(ann, image_dir, ref_out)
        ref_times.append(wall)
        ref_cpus.append(cpu)
        wall, stage, _ = cli_run(ann, image_dir, cli_out, args.workers)
        cli_walls.append(wall)
        cli_stages.append(stage)
        wall, cpu = stage_in_process(ann, image_dir, args.workdir / "ssd_bin_fn", args.workers)
        fn_walls.append(wall)
        fn_cpus.append(cpu)
    identical_fn, _ = same_files(ref_out, args.workdir / "ssd_bin_fn")
    identical, count = same_files(ref_out, cli_out)
    files = [r["file_name"] for r in json.loads(ann.read_text())["images"]][:100]
    stages = breakdown(image_dir, files, args.workdir)
    load_after = os.getloadavg()

    ref_rate, cli_rate, stage_rate = count / min(ref_times), count / min(cli_walls), count / min(cli_stages)
    fn_rate = count / min(fn_walls)
    ref_cpu_ms, fn_cpu_ms = 1e3 * min(ref_cpus) / count, 1e3 * min(fn_cpus) / count
    workers = args.workers or len(os.sched_getaffinity(0))
    projected = ref_cpu_ms / (fn_cpu_ms / min(workers, os.cpu_count() or 1))
    result = {
        "images": count, "identical_output": identical and identical_fn, "repeat": args.repeat,
        "reference_loop": {"seconds": ref_times, "cpu_seconds": ref_cpus, "images_per_s": round(ref_rate, 1),
                           "cpu_ms_per_image": round(ref_cpu_ms, 2)},
        "ssdconvert_preprocess": {"wall_seconds": cli_walls, "stage_seconds": cli_stages,
                                  "images_per_s_wall": round(cli_rate, 1), "images_per_s_stage": round(stage_rate, 1),
                                  "workers": workers},
        "preprocess_dataset_in_process": {"wall_seconds": fn_walls, "cpu_seconds_all_processes": fn_cpus,
                                          "images_per_s": round(fn_rate, 1), "cpu_ms_per_image": round(fn_cpu_ms, 2)},
        "ratio_wall": round(cli_rate / ref_rate, 2), "ratio_stage": round(stage_rate / ref_rate, 2),
        "ratio_in_process": round(fn_rate / ref_rate, 2),
        "ratio_projected_idle_cpu_bound": round(projected, 2),
        "breakdown_ms_per_image": {k: round(v, 3) for k, v in stages.items()},
        "machine": {"cpus": os.cpu_count(), "load_before": load_before, "load_after": load_after,
                    "python": platform.python_version(), "pillow": PIL.__version__, "numpy": np.__version__},
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1) + "\n")

    print(f"{count} JPEGs ({', '.join(f'{w}x{h}' for w, h in SIZES)}), best of {args.repeat}, "
          f"{workers} worker(s), {os.cpu_count()} CPUs, load average {load_before[0]:.1f} -> {load_after[0]:.1f}")
    print("| run | wall s | images/s | vs reference | CPU ms/image |\n|---|---|---|---|---|")
    print(f"| reference loop (1 process) | {min(ref_times):.2f} | {ref_rate:.0f} | 1.00x | {ref_cpu_ms:.2f} |")
    print(f"| ssdconvert preprocess (CLI), wall incl. start-up | {min(cli_walls):.2f} | {cli_rate:.0f} | "
          f"{cli_rate / ref_rate:.2f}x | |")
    print(f"| ssdconvert preprocess (CLI), stage time it reports | {min(cli_stages):.2f} | {stage_rate:.0f} | "
          f"{stage_rate / ref_rate:.2f}x | |")
    print(f"| preprocess_dataset() in-process | {min(fn_walls):.2f} | {fn_rate:.0f} | {fn_rate / ref_rate:.2f}x | "
          f"{fn_cpu_ms:.2f} (all processes) |")
    print(f"identical output: {identical and identical_fn} ({count} files)")
    print(f"CPU-bound projection for {min(workers, os.cpu_count() or 1)} idle cores: {projected:.2f}x "
          "(reference CPU per image / (ours / cores); a projection, not a measurement)")
    total = sum(v for k, v in stages.items() if k != "reference normalise")
    print("\n| stage (fast path, 1 process) | ms/image | share |\n|---|---|---|")
    for key, ms in stages.items():
        share = f"{100 * ms / total:.0f} %" if key != "reference normalise" else "(for comparison)"
        print(f"| {key} | {ms:.2f} | {share} |")
    print(f"\nwrote {args.json}")
    if not (identical and identical_fn):
        raise SystemExit("outputs differ")


if __name__ == "__main__":
    main()
