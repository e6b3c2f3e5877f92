"""The standard batch-size sweep for SSD-ResNet34 on ONNX Runtime and OpenVINO (CPU, FP32).

    .venv/bin/python benchmarks/sweep.py                       # bs 1,4,8,16,32,64, 5 s each
    .venv/bin/python benchmarks/sweep.py --bs 1,8,32 --duration 3

Runs `ssdconvert bench` (ssdconvert.bench.run_bench) once per runtime on one dynamic-batch ONNX
(seeded random weights: speed does not depend on them) and writes, under benchmarks/results/:
  ssd_resnet34_onnxruntime.{md,json,csv,png}, ssd_resnet34_openvino.{md,json,csv,png}, and
  sweep_ssd_resnet34.md: one table shaped like the published Ascend one (batch size -> samples/s
  per runtime), next to the Ascend 310/310P numbers of Ascend ModelZoo's SSD-ResNet34 README for scale.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from runner_overhead import ensure_onnx  # noqa: E402  (sibling script; its folder is on sys.path)
from ssdconvert.bench import THROUGHPUT_DEFINITION, fmt_throughput, run_bench  # noqa: E402
from ssdconvert.formatting import markdown_table  # noqa: E402
from ssdconvert.zoo import get_spec  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
# Ascend ModelZoo-PyTorch SSD-Resnet34 README (`python3 -m ais_bench --model ssd_bsN.om --loop 100
# --batchsize N`): ais_bench pure inference, samples/s, Ascend 310 and 310P.
ASCEND = {1: (711.356, 960.2), 4: (825.516, 1435.2), 8: (849.156, 1550.3), 16: (862.468, 1503.1),
          32: (812.368, 1516.5), 64: (810.368, 961.1)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--bs", default="1,4,8,16,32,64")
    p.add_argument("--duration", type=float, default=5.0, help="seconds of timed runs per batch size")
    p.add_argument("--backends", default="onnxruntime,openvino")
    p.add_argument("--onnx", type=Path, default=ROOT / "build" / "bench" / "ssd_resnet34_dynamic.onnx")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    sizes = [int(s) for s in args.bs.split(",")]
    spec = get_spec("ssd-resnet34")
    onnx = ensure_onnx(args.onnx)

    reports = []
    for backend in args.backends.split(","):
        print(f"== {backend}", flush=True)
        report = run_bench(onnx, backend=backend, batch_sizes=sizes, duration=args.duration, output_dir=args.out,
                           name=f"ssd_resnet34_{backend}", flops_per_image=spec.flops_per_image,
                           progress=lambda m: print("  " + m, flush=True))
        reports.append(report)
        if report.stopped_early:
            print(f"  stopped early: {report.failure}", flush=True)

    headers = ["Batch size", *[r.label for r in reports], "Ascend 310 (ModelZoo README)", "Ascend 310P (ModelZoo README)"]
    rows = []
    for bs in sizes:
        cells = []
        for r in reports:
            row = next((x for x in r.rows if x.batch_size == bs), None)
            cells.append(fmt_throughput(row.throughput) if row and row.status == "ok" else (row.status if row else ""))
        seed = ASCEND.get(bs, ("", ""))
        rows.append([bs, *cells, *seed])
    m = reports[0].machine
    md = "\n".join([
        "# SSD-ResNet34 batch-size sweep (CPU, FP32, seeded random weights)",
        "",
        markdown_table(headers, rows),
        "",
        f"Unit: samples/s. {THROUGHPUT_DEFINITION}. The Ascend columns are Ascend ModelZoo SSD-ResNet34 README's ais_bench numbers "
        "(same definition, fp16 device compute) for scale, not measured here.",
        "",
        f"- Machine: {m['cpu_model']}, {m['usable_cores']} cores, load average at start "
        f"{', '.join(f'{v:.2f}' for v in m['load_average_at_start'])}, at end "
        f"{', '.join(f'{v:.2f}' for v in reports[-1].machine.get('load_average_at_end', []))}; "
        "shared with other jobs, so numbers are noisy",
        f"- {args.duration:g} s of timed runs per batch size after one warm-up run (at least one timed run)",
        "- Per-runtime details (latency, wall throughput, GFLOP/s): "
        + ", ".join(f"[{Path(r.outputs['md']).name}]({Path(r.outputs['md']).name})" for r in reports),
        "",
    ])
    out = args.out / "sweep_ssd_resnet34.md"
    out.write_text(md)
    print(md)
    return 0 if not any(r.stopped_early for r in reports) else 1


if __name__ == "__main__":
    sys.exit(main())
