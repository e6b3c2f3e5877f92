"""Dynamic-batch ONNX export: graph contract, parity with PyTorch, validation errors, sidecar."""

from __future__ import annotations

import copy
import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from click.testing import CliRunner

from ssdconvert.checkpoints import WeightsSource
from ssdconvert.fileio import sha256_of
from ssdconvert.cli import cli
from ssdconvert.errors import ExportError, OutputMismatchError
from ssdconvert.export import export_model, seeded_input
from ssdconvert.zoo.raw_outputs import OutputDiff, ValidationReport, validate_model_outputs


def test_graph_contract(exported_onnx):
    model = onnx.load(str(exported_onnx))
    (inp,) = model.graph.input
    assert inp.name == "image"
    assert [o.name for o in model.graph.output] == ["ploc", "plabel"]
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert dims == ["-1", 3, 300, 300]
    out_dims = [d.dim_param or d.dim_value for d in model.graph.output[1].type.tensor_type.shape.dim]
    assert out_dims == ["-1", 81, 8732]
    assert model.opset_import[0].version == 11


@pytest.mark.parametrize("batch", [1, 3, pytest.param(16, marks=pytest.mark.heavy)])  # 16: ~12 s
def test_one_model_runs_at_several_batches_within_1e4_of_torch(exported_onnx, torch_model, spec, batch):
    session = ort.InferenceSession(str(exported_onnx), providers=["CPUExecutionProvider"])
    x = seeded_input(spec, batch, seed=batch)
    ploc, plabel = session.run(["ploc", "plabel"], {"image": x})
    assert ploc.shape == (batch, 4, 8732) and plabel.shape == (batch, 81, 8732)
    with torch.no_grad():
        ref_loc, ref_label = torch_model(torch.from_numpy(x))
    assert np.abs(ploc - ref_loc.numpy()).max() < 1e-4
    assert np.abs(plabel - ref_label.numpy()).max() < 1e-4


def test_sidecar_records_provenance_and_validation(exported_onnx, export_bs):
    meta = json.loads(exported_onnx.with_name(exported_onnx.name + ".json").read_text())
    assert meta["model"] == "ssd-resnet34"
    assert meta["onnx"]["sha256"] == sha256_of(exported_onnx)
    assert meta["onnx"]["opset"] == 11 and meta["onnx"]["dynamic_batch"] is True
    assert meta["weights"]["is_random"] is True and meta["weights"]["random_seed"] == 0
    assert meta["validation"]["passed"] is True
    checked = {(d["batch"], d["output"]) for d in meta["validation"]["diffs"]}
    assert checked == {(1, "ploc"), (1, "plabel"), (export_bs, "ploc"), (export_bs, "plabel")}
    assert all(d["max_abs"] < 1e-4 for d in meta["validation"]["diffs"])
    assert meta["simplifier"] == "onnxslim" and meta["nodes"]["after"] < meta["nodes"]["before"]
    assert meta["versions"]["torch"].startswith("2.13.0")


def test_validation_names_the_output_that_differs(exported_onnx, torch_model, spec):
    perturbed = copy.deepcopy(torch_model)
    with torch.no_grad():
        perturbed.mbox[0].bias[:324] += 0.01  # class logits of level 0 only
    report = validate_model_outputs(exported_onnx, perturbed, spec, [1], atol=1e-4)
    failure = report.first_failure()
    assert failure.output == "plabel" and failure.max_abs == pytest.approx(0.01, rel=1e-3)
    ploc = next(d for d in report.diffs if d.output == "ploc")
    assert ploc.max_abs < 1e-4
    err = OutputMismatchError(failure.output, failure.batch, failure.max_abs, 1e-4)
    assert "output 'plabel' differs from PyTorch at batch 1: max abs diff 0.01 > tolerance 0.0001" in str(err)


def test_failed_validation_leaves_nothing_on_disk(tmp_path, torch_model, spec, monkeypatch):
    failing = ValidationReport(atol=1e-4)
    failing.diffs = []
    from ssdconvert.zoo import raw_outputs

    failing.diffs.append(OutputDiff("ploc", 1, 0.5, 1.0))
    monkeypatch.setattr(raw_outputs, "validate_model_outputs", lambda *a, **k: failing)
    with pytest.raises(OutputMismatchError, match="output 'ploc'"):
        export_model(torch_model, spec, tmp_path / "m.onnx", weights=WeightsSource(random_seed=0),
                    simplify_model=False)
    assert list(tmp_path.iterdir()) == []


def test_static_batch_export_at_another_opset(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # export remembers its output in ./.ssdconvert/
    out = tmp_path / "static.onnx"
    result = CliRunner().invoke(cli, ["export", "--bs", "1", "--static-batch", "--opset", "13",
                                      "--no-simplify", "--output", str(out)])
    assert result.exit_code == 0, result.output
    model = onnx.load(str(out))
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 1
    assert model.opset_import[0].version == 13
    assert "PASSED" in result.output and "static batch 1" in result.output


def test_bad_arguments_are_rejected(tmp_path, torch_model, spec):
    weights = WeightsSource(random_seed=0)
    with pytest.raises(ExportError, match="opset 9 is not supported"):
        export_model(torch_model, spec, tmp_path / "a.onnx", weights=weights, opset=9)
    with pytest.raises(ExportError, match="batch size must be >= 1"):
        export_model(torch_model, spec, tmp_path / "a.onnx", weights=weights, batch=0)


@pytest.mark.parametrize("target", ["/proc/ssdconvert_test.onnx", "/dev/null/x.onnx"])
def test_unwritable_output_is_one_line_error(tmp_path, monkeypatch, target):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["export", "--bs", "1", "--no-simplify", "--output", target])
    assert result.exit_code == 1, result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("Error: cannot ") and target.rsplit("/", 1)[0] in last
    assert "Traceback" not in result.output and not list(tmp_path.glob(".*.tmp"))


def test_a_nan_checkpoint_fails_naming_the_output_and_is_not_remembered(tmp_path, monkeypatch, torch_model):
    """All-NaN weights used to print "error inf <= inf ... PASSED" and point the state file at the model."""
    from ssdconvert.state import recall

    monkeypatch.chdir(tmp_path)
    state = {k: torch.full_like(v, float("nan")) if v.is_floating_point() else v
             for k, v in torch_model.state_dict().items()}
    torch.save({"state_dict": state}, tmp_path / "nan.pt")
    result = CliRunner().invoke(cli, ["export", "--checkpoint", "nan.pt", "--bs", "1", "--no-simplify",
                                      "--output", "out/nan.onnx"])
    assert result.exit_code == 1, result.output
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("Error: output 'ploc' of PyTorch has 34928 of 34928 values not finite (NaN or inf) at "
                           "batch 1: the PyTorch model itself computes them"), last
    assert "PASSED" not in result.output
    assert list((tmp_path / "out").iterdir()) == [] and recall("onnx") is None


def test_ctrl_c_during_export_says_nothing_was_kept_and_how_to_resume(tmp_path, monkeypatch):
    """Interrupted after the graph was written (during validation): one Error line, not click's bare "Aborted!",
    and no temporary file left."""
    from ssdconvert.zoo import raw_outputs

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(raw_outputs, "validate_model_outputs", interrupted)
    result = CliRunner().invoke(cli, ["export", "--bs", "1", "--no-simplify", "--output", "out/m.onnx"])
    assert result.exit_code == 130, result.output  # as every interrupted command (errors.Interrupted)
    assert "Aborted!" not in result.output
    assert result.output.strip().splitlines()[-1] == (
        "Error: interrupted: nothing was written to out (no partial file is left); run the same command again to "
        "export")
    assert list((tmp_path / "out").iterdir()) == []
