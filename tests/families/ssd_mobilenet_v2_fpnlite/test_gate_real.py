"""The accuracy gate judged on real detections: `quantize --gate-bins` on the 43 annotated COCO images.

The FP32 reference's AP is checked against the figure benchmarks/int8_real.py measured with its own
decoder, TF-style NMS and a plain pycocotools call (0.2024, results/int8_real.md), so the gate's real mAP
is not only compared with itself. An INT8 model calibrated on all-zero inputs must FAIL with its AP drop
in AP points (it also fails on cosine and detection agreement); the default (Percentile) calibration
on real images must PASS (heavy: one image per calibration batch).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

FP32_AP_POINTS = 20.24  # benchmarks/results/int8_real.md, onnxruntime fp32 row (0.2024)


@pytest.fixture(scope="module")
def zero_bins(tmp_path_factory, calib_bins) -> Path:
    """The calibration folder with every sample's bytes set to zero."""
    out = tmp_path_factory.mktemp("zeros") / "bins"
    shutil.copytree(calib_bins, out)
    for path in out.glob("*.bin"):
        path.write_bytes(bytes(path.stat().st_size))
    return out


def gate_on_real(cli, st_export, calib, val_bins, out: Path, calib_images: int, *options):
    done = cli("quantize", st_export, "--calib", calib, "--calib-images", calib_images, "--gate-bins", val_bins,
               "--gate-images", 43, "--output", out, *options)
    assert "Traceback" not in done.output, done.output
    return done, json.loads(Path(f"{out}.json").read_text())["gate"]


def test_gate_fails_an_int8_model_calibrated_on_zeros_with_its_real_ap_drop(cli, st_export, zero_bins, val_bins,
                                                                           tmp_path):
    # every all-zero sample gives the same ranges: 4 calibrate as 85 would
    done, gate = gate_on_real(cli, st_export, zero_bins, val_bins, tmp_path / "zeros.onnx", 4, "--calibration",
                              "minmax")
    print(done.output)
    assert done.exit_code == 1 and gate["passed"] is False
    real = gate["real_map"]
    assert 100 * real["reference"] == pytest.approx(FP32_AP_POINTS, abs=0.005)
    drop = 100 * (real["reference"] - real["candidate"])
    assert drop > 1.0  # the default --max-map-drop
    found = re.search(r"real COCO mAP drops (\d+\.\d\d) AP points > 1\.0", done.output)
    assert found and float(found.group(1)) == pytest.approx(drop, abs=0.005), done.output
    assert gate["failures"][0].startswith("real COCO mAP drops")  # the first figure


@pytest.mark.heavy  # Percentile calibrates one image per batch: ~30 s for 16 images
def test_gate_passes_the_percentile_calibrated_int8_model(cli, st_export, calib_bins, val_bins, tmp_path):
    done, gate = gate_on_real(cli, st_export, calib_bins, val_bins, tmp_path / "pct.onnx", 16)
    print(done.output)
    assert done.exit_code == 0 and gate["passed"] is True, done.output
    real = gate["real_map"]
    assert 100 * real["reference"] == pytest.approx(FP32_AP_POINTS, abs=0.005)
    assert 100 * (real["reference"] - real["candidate"]) <= 1.0
    assert "real COCO mAP: reference 20.24" in done.output and "PASSED the accuracy gate" in done.output


def test_gate_bins_of_another_detector_are_refused(cli, st_export, calib_bins, r34_bins, tmp_path):
    done = cli("quantize", st_export, "--calib", calib_bins, "--gate-bins", r34_bins, "--output", tmp_path / "x.onnx")
    assert done.exit_code != 0 and "Error:" in done.output and "Traceback" not in done.output, done.output
    assert not (tmp_path / "x.onnx").exists()
