"""FP32 vs BF16 vs INT8 on this CPU, ONNX Runtime and OpenVINO, with the accuracy gate's figures side by side.

For each model (seeded weights unless --onnx is given): synthetic images -> preprocess -> export ->
INT8 per runtime (`ssdconvert quantize`, gated) and the OpenVINO BF16 gate -> `bench` at batch
1/8/32 for every (runtime, precision). Writes benchmarks/results/precision_<model>.{json,md} with
the CPU model and flags, throughput per batch, the speed-up over the same runtime's FP32 and the
gate figures (min cosine, min SNR, detection agreement AP).

    python benchmarks/precision_bench.py                       # ssd-resnet34 and ssd-vgg16
    python benchmarks/precision_bench.py --models ssd-vgg16 --bs 1,8 --duration 3
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from ssdconvert.formatting import markdown_table

RESULTS = Path(__file__).resolve().parent / "results"
PLAN = (("onnxruntime", "fp32"), ("onnxruntime", "int8"), ("openvino", "fp32"), ("openvino", "bf16"),
        ("openvino", "int8"))


def prepare(model: str, work: Path, images: int):
    from preprocess.run import preprocess_dataset
    from ssdconvert.checkpoints import WeightsSource, build_model
    from ssdconvert.export import export_model
    from ssdconvert.synth import generate
    from ssdconvert.zoo import get_spec

    spec = get_spec(model)
    ds = generate(work / "coco", images=images, seed=0)
    bins = work / "bins"
    preprocess_dataset(ds.annotation_file, ds.image_dir, bins, spec.transform, model=spec.name,
                       input_name=spec.input.name, workers=1, all_images=spec.head.evaluated_images == "all",
                       progress=False)
    onnx = work / f"{model.replace('-', '_')}.onnx"
    export_model(build_model(spec)[0], spec, onnx, weights=WeightsSource(random_seed=0), batch=2)
    return spec, bins, onnx


def gate_figures(report) -> dict:
    return {"min_cosine": min(o.cosine for o in report.outputs), "min_snr_db": min(o.snr_db for o in report.outputs),
            "detection_ap": report.detections.ap if report.detections else None, "passed": report.passed,
            "images": report.images}


def measure(model: str, batch_sizes: list[int], duration: float, images: int, work: Path) -> dict:
    from ssdconvert.bench import machine_info, run_bench
    from ssdconvert.quantize import check_gate, describe_source, quantize_model
    from ssdconvert.samples import open_samples

    spec, bins, onnx = prepare(model, work, images)
    models = {("onnxruntime", "fp32"): onnx, ("openvino", "fp32"): onnx, ("openvino", "bf16"): onnx}
    gates = {}
    for backend in ("onnxruntime", "openvino"):
        out = work / f"int8_{backend}" / (onnx.stem + (".onnx" if backend == "onnxruntime" else ".xml"))
        result = quantize_model(onnx, bins, out, backend=backend, calib_images=images, gate_images=images,
                                say=print)
        models[(backend, "int8")] = result.model
        gates[(backend, "int8")] = gate_figures(result.gate)
    everything = open_samples(bins)
    spec_, weights = describe_source(onnx, everything.manifest, None)
    gates[("openvino", "bf16")] = gate_figures(check_gate(onnx, onnx, "openvino", everything, spec_,
                                                          __import__("ssdconvert.agreement").agreement.Thresholds(),
                                                          weights, precision="bf16"))
    rows = {}
    for backend, precision in PLAN:
        report = run_bench(models[(backend, precision)], backend=backend, batch_sizes=batch_sizes, duration=duration,
                           output_dir=work / "bench", name=f"{backend}_{precision}", precision=precision, plot=False,
                           progress=print)
        rows[f"{backend} {precision}"] = {"throughput": {r.batch_size: r.throughput for r in report.ok_rows},
                                          "label": report.label, **gates.get((backend, precision), {})}
    return {"model": model, "weights": "seeded random (seed 0)", "images": len(everything),
            "machine": machine_info(), "batch_sizes": batch_sizes, "duration_s": duration, "rows": rows}


def markdown(result: dict) -> str:
    m = result["machine"]
    sizes = result["batch_sizes"]
    lines = [f"# Precision benchmark: {result['model']}", "",
             f"CPU: {m['cpu_features']}; {m['usable_cores']} usable cores. Weights: {result['weights']} "
             f"(gate figures describe numerical agreement only). {result['images']} synthetic images. Throughput: "
             "samples/s, compute only; ratio = over the same runtime's FP32.", ""]
    table = []
    for name, row in result["rows"].items():
        base = result["rows"][f"{name.split()[0]} fp32"]["throughput"]
        cells = [f"{row['throughput'][b]:.1f} ({row['throughput'][b] / base[b]:.2f}x)" if b in row["throughput"]
                 and b in base else "–" for b in sizes]
        gate = (f"{row['min_cosine']:.5f}", f"{row['min_snr_db']:.1f}", f"{row['detection_ap']:.3f}",
                "pass" if row["passed"] else "FAIL") if "passed" in row else ("reference" if name.startswith(
                    "onnxruntime fp32") else "–", "", "", "")
        table.append((name, *cells, *gate))
    lines.append(markdown_table(["runtime precision", *(f"bs {b}" for b in sizes), "min cosine", "min SNR dB",
                                 "detection agreement AP", "gate"], table))
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="ssd-resnet34,ssd-vgg16")
    parser.add_argument("--bs", default="1,8,32")
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--images", type=int, default=32)
    args = parser.parse_args()
    RESULTS.mkdir(exist_ok=True)
    for model in args.models.split(","):
        with tempfile.TemporaryDirectory(prefix="precision-bench-") as tmp:
            result = measure(model, [int(b) for b in args.bs.split(",")], args.duration, args.images, Path(tmp))
        stem = RESULTS / f"precision_{model.replace('-', '_')}"
        stem.with_suffix(".json").write_text(json.dumps(result, indent=1, default=str) + "\n")
        text = markdown(result)
        stem.with_suffix(".md").write_text(text)
        print(text)


if __name__ == "__main__":
    main()
