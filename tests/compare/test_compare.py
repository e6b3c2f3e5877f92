"""`ssdconvert compare` on the seeded ssd-resnet34 (real ONNX Runtime and OpenVINO, one image)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from ssdconvert.cli import cli
from ssdconvert.compare import compare_models, dump_file_stem

MIDDLE_CONV = 20  # a conv in the backbone, far from both ends


def invoke(*args):
    return CliRunner().invoke(cli, ["compare", *map(str, args)])


@pytest.fixture(scope="module")
def perturbed(exported_onnx, tmp_path_factory):
    """The export with one conv's weights scaled by 1.5: (model, the conv's output tensor name)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(exported_onnx))
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    conv = convs[MIDDLE_CONV]
    weights = {i.name: i for i in model.graph.initializer}
    w = weights[conv.input[1]]
    w.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(w) * 1.5, w.name))
    path = tmp_path_factory.mktemp("perturbed") / "perturbed.onnx"
    onnx.save(model, str(path))
    return path, conv.output[0]


def test_a_perturbed_conv_is_named_as_the_first_failing_layer(exported_onnx, perturbed, r34_bins, tmp_path):
    path, conv_output = perturbed
    result = invoke(exported_onnx, path, "--input", r34_bins, "--images", "1", "-o", tmp_path)
    assert result.exit_code == 1, result.output
    data = json.loads((tmp_path / "compare.json").read_text())
    first = data["first_failing"]
    assert first["name"] == conv_output and first["op_type"] == "Conv"
    assert "born here" in data["verdict"]  # its input is still exact
    earlier = [la for la in data["layers"] if la["index"] < first["index"] and la["figures"]]
    assert earlier and all(la["figures"]["max_abs"] == 0 for la in earlier)  # same graph, same ORT: bit-exact before
    assert (tmp_path / "compare.png").stat().st_size > 0
    assert result.output.strip().splitlines()[-1].startswith(f"Error: first layer crossing the threshold: "
                                                             f"#{first['index']} {conv_output} (Conv)")


def test_openvino_fp32_matches_onnxruntime_in_every_layer(exported_onnx, r34_bins, tmp_path):
    result = invoke(exported_onnx, f"openvino:{exported_onnx}:fp32", "--input", r34_bins, "--images", "1", "-o",
                    tmp_path)
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "compare.json").read_text())
    assert data["first_failing"] is None and not data["unmatched"]
    compared = [la for la in data["layers"] if la["figures"]]
    assert len(compared) == len(data["layers"]) > 100
    assert all(float(la["figures"]["snr_db"]) > 60 for la in compared)  # FP32 vs FP32: rounding only


def test_openvino_bf16_error_grows_and_agrees_with_the_final_outputs(cpu_kind, exported_onnx, r34_bins, tmp_path):
    """Where the CPU computes bf16, its error profile; where it cannot (AVX2 only, or the probe made to say so),
    compare refuses the bf16 side in one line instead of measuring f32 as bf16."""
    from ssdconvert.backends.openvino.device import refusal

    refused = refusal("bf16")
    if refused:
        if cpu_kind == "this-cpu":
            pytest.skip(f"bf16 arithmetic needs native BF16 ({refused}); the avx2-only case tests the refusal")
        result = invoke(exported_onnx, f"openvino:{exported_onnx}:bf16", "--input", r34_bins, "--images", "1", "-o",
                        tmp_path)
        assert result.exit_code == 1, result.output
        assert result.output.strip().splitlines()[-1].startswith("Error: OpenVINO's CPU cannot compute bf16 here: "
                                                                 "its OPTIMIZATION_CAPABILITIES (")
        assert "Traceback" not in result.output and not (tmp_path / "compare.json").exists()
        return
    report = compare_models(str(exported_onnx), f"openvino:{exported_onnx}:bf16", r34_bins, images=1)
    snr = [la.figures.snr_db for la in report.compared]
    assert all(math.isfinite(s) for s in snr)
    # bf16 rounding accumulates with depth: the first conv keeps ~51 dB, the deepest layers and the
    # concatenated outputs fall ~8 dB lower (measured profile on the seeded model)
    assert snr[0] - min(snr) > 5
    assert min(snr) < 60  # it really is BF16, not FP32
    final = {f.name: f for f in report.final.outputs}
    layers = {la.name: la.figures for la in report.compared}
    for name in ("ploc", "plabel"):
        assert layers[name].snr_db < snr[0]  # the outputs carry the accumulated error
        assert layers[name].snr_db == pytest.approx(final[name].snr_db)
        assert layers[name].cosine == pytest.approx(final[name].cosine)


@pytest.fixture(scope="module")
def golden_dump(exported_onnx, r34_bins, tmp_path_factory):
    out = tmp_path_factory.mktemp("dump") / "golden"
    result = invoke(exported_onnx, exported_onnx, "--input", r34_bins, "--images", "1", "--save-dump", out, "-o",
                    out.parent / "cmp")
    assert result.exit_code == 0, result.output
    return out


def test_a_dump_folder_compares_against_the_reference(exported_onnx, golden_dump, r34_bins, tmp_path):
    dump = tmp_path / "dump"
    dump.mkdir()
    for f in golden_dump.iterdir():
        (dump / f.name).write_bytes(f.read_bytes())
    plabel = np.load(dump / "plabel.npy")
    plabel.astype(np.float32).tofile(dump / "plabel.bin")  # the raw-float32 form of the layout
    (dump / "plabel.npy").unlink()
    conv = sorted(p for p in dump.glob("*Conv*.npy"))[3]
    conv.unlink()  # an intermediate tensor the device did not dump
    result = invoke(exported_onnx, dump, "--input", r34_bins, "--images", "1", "-o", tmp_path / "cmp")
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    missing = conv.stem.replace("%2F", "/")
    assert data["unmatched"] == {"candidate": [missing]}
    assert f"not in the candidate (1): {missing}" in result.output


def test_a_dump_with_a_missing_or_misshaped_tensor_is_named(exported_onnx, golden_dump, r34_bins, tmp_path):
    dump = tmp_path / "dump"
    dump.mkdir()
    for f in golden_dump.iterdir():
        if f.name != "ploc.npy":
            (dump / f.name).write_bytes(f.read_bytes())
    missing = invoke(exported_onnx, dump, "--input", r34_bins, "--images", "1", "-o", tmp_path / "a")
    assert missing.exit_code == 1
    assert missing.output.strip().splitlines()[-1] == (
        f"Error: the dump {dump} has no ploc.npy or .bin (final output ploc); the layout is <tensor name>.npy|.bin")
    np.save(dump / "ploc.npy", np.load(golden_dump / "ploc.npy"))
    relu = sorted(dump.glob("*Relu*.npy"))[0]
    np.save(relu, np.load(relu)[:, :-1])  # one channel short
    wrong = invoke(exported_onnx, dump, "--input", r34_bins, "--images", "1", "-o", tmp_path / "b")
    assert wrong.exit_code == 1
    name = relu.stem.replace("%2F", "/")
    assert f"Error: dump {relu.name}: tensor {name} has shape" in wrong.output
    assert dump_file_stem(name) == relu.stem


def test_comma_separated_input_folders_reach_the_sample_reader(exported_onnx, r34_bins, tmp_path):
    """--input takes one folder per model input, comma-separated: each is checked by the sample
    reader (which names the one that is missing), not refused whole as one path by the option."""
    result = invoke(exported_onnx, exported_onnx, "--input", f"{r34_bins},{tmp_path / 'im_info'}", "-o", tmp_path)
    assert result.exit_code == 1, result.output
    assert f"{tmp_path / 'im_info'} is not a folder" in result.output


@pytest.mark.parametrize("corrupt", ["truncated", "text"])
def test_a_corrupt_onnx_on_either_side_is_one_error_line(corrupt, exported_onnx, r34_bins, tmp_path):
    """A truncated .onnx, or a text file named .onnx, once raised protobuf's DecodeError (issue 24 §3.6)."""
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(exported_onnx.read_bytes()[:100_000] if corrupt == "truncated" else b"not a model\n")
    for sides in ((exported_onnx, bad), (bad, exported_onnx)):
        result = invoke(*sides, "--input", r34_bins, "--images", "1", "-o", tmp_path / "cmp")
        assert result.exit_code == 1, result.output
        assert result.output.strip().splitlines()[-1].startswith(
            f"Error: cannot read {bad} as ONNX (truncated, or not an ONNX file?): ")
        assert "Traceback" not in result.output and not (tmp_path / "cmp").exists()
