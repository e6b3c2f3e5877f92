"""Device-side normalisation end to end: `preprocess --dtype uint8` -> `atc --aipp` -> `infer` -> `eval`.

The fake ATC records the AIPP .om's input as uint8 NHWC and the fake ais_bench reads the bins' bytes as such
and applies the AIPP arithmetic in fp16 (tests/fakes). The reference is written here, literally: the float
model on the host-normalised pixels, (v / 255 - mean) / std in CHW, run with ONNX Runtime.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from ssdconvert.cli import cli

FAKES = Path(__file__).resolve().parents[2] / "fakes"
MEAN, STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])


def invoke(*args) -> str:
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


def reference_outputs(onnx: Path, bins: list[Path]) -> dict[str, list[np.ndarray]]:
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
    pixels = np.stack([np.fromfile(f, np.uint8).reshape(300, 300, 3) for f in bins]).astype(np.float64)
    x = ((pixels / 255 - MEAN) / STD).transpose(0, 3, 1, 2).astype(np.float32)
    outputs = session.run(None, {"image": x})
    return {f.stem: [out[k] for out in outputs] for k, f in enumerate(bins)}


def test_aipp_om_runs_uint8_bins_from_preprocess_to_eval(tmp_path, exported_onnx, launcher, monkeypatch, with_fakes):
    from ssdconvert.synth import generate

    ds = generate(tmp_path / "coco", images=3, seed=5)  # batch 2: one full batch and one padded
    bins = tmp_path / "ssd_u8"
    invoke("preprocess", "--dtype", "uint8", "--workers", "1", "--val_annotation", ds.annotation_file,
           "--data_root", ds.image_dir, "--save_path", bins)
    files = sorted(bins.glob("*.bin"))
    assert files and all(f.stat().st_size == 300 * 300 * 3 for f in files)  # uint8 HWC

    launcher(tmp_path / "bin", "atc", "atc.py")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    invoke("atc", "--onnx", exported_onnx, "--soc", "Ascend310P3", "--bs", "2", "--aipp", "-q",
           "--output", tmp_path / "ssd_aipp")
    om = tmp_path / "ssd_aipp.om"
    expected = reference_outputs(exported_onnx, files)

    monkeypatch.setenv("PYTHONPATH", str(FAKES))
    monkeypatch.setenv("SSDCONVERT_AIS_BENCH_PYTHON", sys.executable)
    with with_fakes():
        for way in ("InferSession", "subprocess"):
            if way == "subprocess":  # `python3 -m ais_bench` batches the uint8 bins itself
                monkeypatch.setattr("ssdconvert.backends.ascend.runner.api_available", lambda: False)
            invoke("infer", "--model", om, "--input", bins, "--output", tmp_path / way, "--batchsize", "2",
                   "--warmup", "0")
            for f in files:
                for i, want in enumerate(expected[f.stem]):
                    got = np.fromfile(tmp_path / way / f"{f.stem}_{i}.bin", np.float32).reshape(want.shape)
                    scale = np.abs(want).max()
                    assert 0 < np.abs(got - want).max() <= 2e-3 * scale, (way, f.name, i)  # fp16 AIPP, no more
    report = invoke("eval", "--bin_path", tmp_path / "InferSession")
    assert f"images: {len(files)}" in report, report


@pytest.mark.parametrize("feature", ["crop: true", "csc_switch: true", "input_format: YUV420SP_U8"])
def test_fake_ais_bench_refuses_aipp_it_does_not_model(tmp_path, exported_onnx, launcher, monkeypatch, with_fakes,
                                                       feature):
    """The fake models the static RGB888_U8 swap + normalisation only; anything else fails loudly, not silently."""
    launcher(tmp_path / "bin", "atc", "atc.py")
    cfg = tmp_path / "aipp.cfg"
    fields = {"aipp_mode": "static", "input_format": "RGB888_U8", **dict([feature.split(": ")])}
    cfg.write_text("aipp_op {\n" + "".join(f" {k}: {v}\n" for k, v in fields.items()) + "}\n")
    import subprocess

    done = subprocess.run([str(tmp_path / "bin" / "atc"), "--framework=5", f"--model={exported_onnx}",
                           f"--output={tmp_path / 'x'}", "--soc_version=Ascend310P3", "--input_shape=image:1,3,300,300",
                           f"--insert_op_conf={cfg}"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout
    with with_fakes():
        from ais_bench.infer.interface import InferSession

        with pytest.raises(RuntimeError, match="is not modelled"):
            InferSession(0, str(tmp_path / "x.om"))
