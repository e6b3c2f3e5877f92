"""`ssdconvert quantize` for real (ONNX Runtime, OpenVINO/NNCF) on the seeded ssd-resnet34 and a few synthetic images.

The gate's own figures are not trusted here: the INT8 models are also run at other batch sizes and
their outputs compared with ONNX Runtime FP32 by a cosine computed in the test.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from ssdconvert.cli import cli
from ssdconvert.samples import open_samples

CALIB = ["--calib-images", "4", "--gate-images", "4"]


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def test_calibration_selection_is_deterministic_spread_and_only_from_the_bins_given(r34_bins, tmp_path):
    folder = tmp_path / "bins"
    shutil.copytree(r34_bins, folder)
    stems = sorted(json.loads((folder / "manifest.json").read_text())["images"], key=lambda r: r["stem"])
    stems = [r["stem"] for r in stems]  # synthetic names have equal digit counts: natural = plain order
    (folder / f"{stems[1]}.bin").unlink()  # listed but not given: never chosen
    (folder / "999999999999.bin").write_bytes((folder / f"{stems[0]}.bin").read_bytes())  # given, not listed
    given = [s for s in stems if s != stems[1]]
    picked = open_samples(folder).pick(3).stems
    assert picked == [given[0], given[round((len(given) - 1) / 2)], given[-1]]  # first, middle, last
    assert picked == open_samples(folder).pick(3).stems  # deterministic
    assert set(open_samples(folder).pick(None).stems) == set(given)
    gate = open_samples(folder).pick(2, avoid=open_samples(folder).pick(3))
    assert not set(gate.stems) & set(picked)


@pytest.fixture(scope="module")
def int8_models(exported_onnx, r34_bins, tmp_path_factory):
    out = tmp_path_factory.mktemp("int8")
    made = {}
    for backend, name in (("onnxruntime", "m_int8.onnx"), ("openvino", "m_int8.xml")):
        result = CliRunner().invoke(cli, ["quantize", str(exported_onnx), "--calib", str(r34_bins), "--backend",
                                          backend, "--output", str(out / name), *CALIB])
        assert result.exit_code == 0, result.output
        assert "PASSED the accuracy gate" in result.output
        assert "numerical agreement with the reference only" in result.output  # seeded weights, said so
        made[backend] = out / name
    return made


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_int8_model_runs_at_several_batch_sizes_within_the_gate(int8_models, exported_onnx, r34_bins, backend):
    from ssdconvert import backends
    from ssdconvert.backends.base import RunOptions

    record = json.loads(Path(f"{int8_models[backend]}.json").read_text())
    assert record["precision"] == "int8" and record["gate"]["passed"] is True
    assert record["calibration"]["images"] == 4 and len(record["calibration"]["stems"]) == 4
    samples = open_samples(r34_bins)
    with backends.get("onnxruntime").make_runner(exported_onnx) as ref:
        inputs = ref.inputs
        for batch in (1, 3):
            _, feeds, real = next(samples.batches(inputs, batch))
            expected = ref.infer(feeds)
            with backends.get(backend).make_runner(int8_models[backend], RunOptions(batch=batch)) as int8:
                got = int8.infer(feeds)
            for name in ("ploc", "plabel"):
                assert got[name].shape == expected[name].shape == (batch, *expected[name].shape[1:])
                assert 0.99 <= cosine(expected[name], got[name]) < 0.99999, (backend, batch, name)  # INT8, not FP32


def test_onnxruntime_int8_graph_is_qdq_per_channel(int8_models):
    import onnx

    graph = onnx.load(str(int8_models["onnxruntime"])).graph
    ops = {n.op_type for n in graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    weights = {i.name: i for i in graph.initializer}
    scales = [weights[n.input[1]] for n in graph.node if n.op_type == "DequantizeLinear"
              and n.input[1] in weights and weights[n.input[1]].dims]
    assert any(s.dims[0] > 1 for s in scales)  # one scale per output channel


def test_calibration_on_all_zero_bins_fails_the_gate_and_names_the_outputs(exported_onnx, r34_bins, tmp_path):
    zeros = tmp_path / "zeros"
    shutil.copytree(r34_bins, zeros)
    for f in zeros.glob("*.bin"):
        f.write_bytes(bytes(f.stat().st_size))
    # calibrated on zeros, gated on the real images (the CLI gates on the --calib folder itself)
    from ssdconvert.agreement import Thresholds
    from ssdconvert.quantize import check_gate, describe_source, quantize_model

    made = quantize_model(exported_onnx, zeros, tmp_path / "broken.onnx", calib_images=4, gate=False)
    real = open_samples(r34_bins).pick(4)
    spec, weights = describe_source(exported_onnx, real.manifest, None)
    report = check_gate(exported_onnx, made.model, "onnxruntime", real, spec, Thresholds(), weights)
    assert not report.passed
    assert {f.split(":")[0] for f in report.failures[:2]} == {"ploc", "plabel"}
    assert "FAILED the accuracy gate: " in report.verdict()


def test_an_absurd_exclusion_is_refused_and_strict_thresholds_fail_with_exit_1(exported_onnx, r34_bins, tmp_path):
    bad = CliRunner().invoke(cli, ["quantize", str(exported_onnx), "--calib", str(r34_bins), "--exclude",
                                   "no_such_conv", "--output", str(tmp_path / "x.onnx"), *CALIB])
    assert bad.exit_code == 1
    assert "Error: --exclude 'no_such_conv' is not a node of" in bad.output
    strict = CliRunner().invoke(cli, ["quantize", str(exported_onnx), "--calib", str(r34_bins), "--min-snr", "60",
                                      "--output", str(tmp_path / "y.onnx"), *CALIB])
    assert strict.exit_code == 1
    last = strict.output.strip().splitlines()[-1]
    assert last.startswith(f"Error: {tmp_path / 'y.onnx'} failed the accuracy gate: ploc: SNR") or \
        last.startswith(f"Error: {tmp_path / 'y.onnx'} failed the accuracy gate: plabel: SNR")
    assert (tmp_path / "y.onnx").is_file()  # kept, with its record saying it failed
    assert json.loads((tmp_path / "y.onnx.json").read_text())["gate"]["passed"] is False


def test_comma_separated_calibration_folders_reach_the_sample_reader(exported_onnx, r34_bins, tmp_path):
    """--calib takes one folder per model input, comma-separated (the option once refused the whole
    string as one missing directory); the sample reader names the folder that is missing."""
    result = CliRunner().invoke(cli, ["quantize", str(exported_onnx), "--calib", f"{r34_bins},{tmp_path / 'im_info'}",
                                      "--output", str(tmp_path / "q.onnx")])
    assert result.exit_code == 1, result.output
    assert f"{tmp_path / 'im_info'} is not a folder" in result.output
    assert not (tmp_path / "q.onnx").exists()
