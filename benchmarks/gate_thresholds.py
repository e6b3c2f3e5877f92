"""The accuracy gate's figures on a real model: what chose its default thresholds.

STMicroelectronics' COCO-trained SSD-MobileNetV2-FPNLite 256x256 (vendored in ssdconvert/realdata) is
exported (its FP32 original: the dequantized release), INT8 variants are made the project's ways and
each is held to the gate (ssdconvert.quantize.check_gate, the code `quantize` runs) against ONNX
Runtime FP32 on the 43 COCO val2014 images with their original annotations. Per variant: the real
COCO mAP of both sides and the drop in AP points, cosine and SNR per output, the detection agreement
(the candidate's detections scored against FP32's), and the verdict under the current defaults.

    vendor-int8        ST's QDQ INT8 release as shipped (ONNX Runtime)
    ort-minmax         `quantize --backend onnxruntime --calibration minmax`, 85 calibration images
    ort-percentile     `quantize --backend onnxruntime` (Percentile 99.999, the default)
    nncf               `quantize --backend openvino` (NNCF defaults), run by OpenVINO
    ort-zeros-minmax   ONNX Runtime MinMax calibrated on 85 all-zero inputs: a broken calibration
    ort-zeros-percentile  the same with Percentile 99.999

    python benchmarks/gate_thresholds.py            # writes results/gate_thresholds.{json,md}
    python benchmarks/gate_thresholds.py --no-write
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import shutil
import tempfile
import time
from pathlib import Path

from ssdconvert import realdata

RESULTS = Path(__file__).resolve().parent / "results"
MODEL = "ssd-mobilenet-v2-fpnlite"
VARIANTS = ("vendor-int8", "ort-minmax", "ort-percentile", "nncf", "ort-zeros-minmax", "ort-zeros-percentile")


def prepare(work: Path, spec) -> tuple[Path, Path, Path, Path]:
    """(FP32 export, val bins with annotations, calibration bins, all-zero calibration bins) in `work`."""
    from preprocess.run import preprocess_dataset
    from ssdconvert.checkpoints import build_model
    from ssdconvert.export import export_model

    source, weights = build_model(spec)
    fp32 = work / "st_fp32.onnx"
    export_model(source, spec, fp32, weights=weights, batch=2)
    val, calib = work / "val", work / "calib"
    preprocess_dataset(realdata.VAL_ANNOTATION, realdata.VAL_IMAGES, val, spec.transform, model=spec.name,
                       input_name=spec.input.name, workers=1, progress=False)
    preprocess_dataset(None, realdata.CALIBRATION_IMAGES, calib, spec.transform, model=spec.name,
                       input_name=spec.input.name, workers=1, progress=False)
    zeros = zero_copy(calib, work / "calib_zeros")
    return fp32, val, calib, zeros


def zero_copy(bins: Path, out: Path) -> Path:
    """`bins` with every sample's bytes set to zero (same manifest, same sizes)."""
    shutil.copytree(bins, out)
    for path in out.glob("*.bin"):
        path.write_bytes(bytes(path.stat().st_size))
    return out


def make(variant: str, fp32: Path, calib: Path, zeros: Path, work: Path) -> tuple[Path, str]:
    """(model, backend) of one variant."""
    from ssdconvert.backends.onnxruntime import OnnxRuntimeOptions
    from ssdconvert.quantize import quantize_model

    if variant == "vendor-int8":
        return realdata.ST_SSD_INT8, "onnxruntime"
    if variant == "nncf":
        out = quantize_model(fp32, calib, work / "nncf.xml", backend="openvino", gate=False, calib_images=85)
        return out.model, "openvino"
    method = "minmax" if variant.endswith("minmax") else "percentile"
    folder = zeros if "zeros" in variant else calib
    out = quantize_model(fp32, folder, work / f"{variant}.onnx", backend="onnxruntime", gate=False, calib_images=85,
                         options=OnnxRuntimeOptions(calibration=method))
    return out.model, "onnxruntime"


def row(variant: str, report) -> dict:
    outputs = {f.name: {"cosine": f.cosine, "snr_db": f.snr_db} for f in report.outputs if not f.integer}
    real = report.real_map or {}
    return {"variant": variant, "fp32_ap": real.get("reference"), "ap": real.get("candidate"),
            "map_drop_points": report.map_drop_points, "outputs": outputs,
            "detection_agreement_ap": report.detections.ap if report.detections else None,
            "passed": report.passed, "failures": report.failures}


def markdown(rows: list[dict], header: str) -> str:
    names = [n for n in rows[0]["outputs"]]
    short = {n: n.replace("StatefulPartitionedCall:", "out:") for n in names}
    cols = " | ".join(f"cosine {short[n]} | SNR {short[n]} dB" for n in names)
    lines = [header, "", f"| variant | AP | ΔAP points | {cols} | detection agreement AP | gate (defaults) |",
             "|" + "---|" * (5 + 2 * len(names))]
    for r in rows:
        figs = " | ".join(f"{r['outputs'][n]['cosine']:.5f} | {fmt(r['outputs'][n]['snr_db'])}" for n in names)
        lines.append(f"| {r['variant']} | {100 * r['ap']:.2f} | {-r['map_drop_points']:+.2f} | {figs} | "
                     f"{r['detection_agreement_ap']:.4f} | {'PASS' if r['passed'] else 'FAIL'} |")
    return "\n".join(lines) + "\n"


def fmt(db: float) -> str:
    return "inf" if math.isinf(db) else f"{db:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--only", default=",".join(VARIANTS), help="comma-separated variants")
    args = parser.parse_args()
    from ssdconvert.agreement import Thresholds
    from ssdconvert.quantize import check_gate
    from ssdconvert.samples import open_samples
    from ssdconvert.zoo import get_spec

    spec = get_spec(MODEL)
    rows = []
    with tempfile.TemporaryDirectory(prefix="gate-thresholds-") as tmp:
        work = Path(tmp)
        fp32, val, calib, zeros = prepare(work, spec)
        samples = open_samples(val).pick(None)
        for variant in args.only.split(","):
            started = time.perf_counter()
            model, backend = make(variant, fp32, calib, zeros, work)
            report = check_gate(fp32, model, backend, samples, spec, Thresholds(), "trained")
            rows.append(row(variant, report))
            print(f"{variant} ({time.perf_counter() - started:.0f} s):", *report.lines(), sep="\n  ", flush=True)
    header = (f"# The accuracy gate on a real model: ST SSD-MobileNetV2-FPNLite 256x256, 43 COCO val2014 images\n\n"
              f"Written by benchmarks/gate_thresholds.py on {platform.processor() or platform.machine()}. Each INT8 "
              "variant against ONNX Runtime FP32 (the dequantized release) through `check_gate`; AP = COCO "
              "AP@[.5:.95] x 100 on the original annotations (the family's eval policy); INT8 calibrated on the 85 "
              f"calibration images. Defaults judged: {Thresholds().describe()}. Which figures chose them and why: "
              "docs/precision.md, What the gate measures.")
    text = markdown(rows, header)
    print(text)
    if not args.no_write:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "gate_thresholds.json").write_text(json.dumps({"thresholds": Thresholds().__dict__, "rows": rows},
                                                                 indent=1, default=str) + "\n")
        (RESULTS / "gate_thresholds.md").write_text(text)


if __name__ == "__main__":
    main()
