"""End to end: `ssdconvert run` with ONNX Runtime, OpenVINO, Ascend and MagicMind (the last two on fakes).

Seeded random weights give AP 0.0 everywhere, which proves nothing about the accuracy gate. So the
module first runs ONNX Runtime alone on the synthetic set, then turns its best detections into
the ground truth of a COCO folder (same images), and runs every backend on that: ONNX Runtime
then scores AP 1.0 against its own detections, OpenVINO and the fake Ascend (ONNX Runtime behind
the fake ais_bench) must agree with it, and the fake MagicMind device computes wrong on purpose
(FAKE_MAGICMIND_DRIFT shifts every box regression), so its AP really differs.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from ssdconvert.cli import cli

BACKENDS = ("onnxruntime", "openvino", "ascend", "magicmind")
COMMON = ["--bs", "1,2", "--bench-duration", "0.2", "--workers", "1"]
DRIFT = "0.5"  # added to MagicMind's ploc: centres move by 5 % of the box, sizes by 10 %
GT_BOXES = 16


def invoke(with_fakes, env, args):
    with with_fakes():  # the MagicMind runtime is in-process: its fake must be importable here
        return CliRunner(env=env).invoke(cli, args)


def ground_truth_from(detections: Path, coco: Path) -> Path:
    """The synthetic set again (same seed, same images), annotated with the GT_BOXES best detections:
    every detection scoring at least as well is then a true positive and every other one ranks below
    all of them, so these detections score AP = 1.0."""
    from ssdconvert.synth import generate

    ds = generate(coco, images=6, seed=0)
    doc = json.loads(ds.annotation_file.read_text())
    best = sorted(json.loads(detections.read_text()), key=lambda d: -d["score"])[:GT_BOXES]
    doc["annotations"] = [{"id": k + 1, "image_id": d["image_id"], "category_id": d["category_id"],
                           "bbox": d["bbox"], "area": d["bbox"][2] * d["bbox"][3], "iscrowd": 0}
                          for k, d in enumerate(best)]
    ds.annotation_file.write_text(json.dumps(doc))
    return coco


@pytest.fixture(scope="module")
def first_run(tmp_path_factory, fake_vendor_env, with_fakes):
    workdir = tmp_path_factory.mktemp("run")
    common = [*COMMON, "--workdir", str(workdir)]
    seeding = invoke(with_fakes, fake_vendor_env, ["run", "--images", "6", "--backends", "onnxruntime", *common])
    assert seeding.exit_code == 0, seeding.output
    coco = ground_truth_from(workdir / "eval" / "onnxruntime" / "detections.json",
                             tmp_path_factory.mktemp("coco") / "coco")
    args = ["run", "--coco", str(coco), "--backends", ",".join(BACKENDS), *common]
    env = {**fake_vendor_env, "FAKE_MAGICMIND_DRIFT": DRIFT}
    result = invoke(with_fakes, env, args)
    assert result.exit_code == 1, result.output  # the drifted MagicMind fails the gate: the run fails
    assert result.output.strip().splitlines()[-1] == (
        "Error: 1 backend(s) did not pass: magicmind: AP 0.7000 differs from ONNX Runtime's by -0.3000 (gate |delta| <= 0.002)")
    return SimpleNamespace(workdir=workdir, result=result, args=args, env=env, coco=coco)


def load_report(workdir: Path) -> dict:
    return json.loads((workdir / "report.json").read_text())


def test_every_artefact_exists(first_run):
    workdir = first_run.workdir
    for path in ["report.md", "report.json", "throughput.png", "ssd_bin/manifest.json", "ssd_resnet34.onnx",
                 "ssd_resnet34.onnx.json", "annotations/bbox_only_instances_val2017.json",
                 "openvino/ssd_resnet34.xml", "openvino/ssd_resnet34.bin", "ascend/ssd_resnet34_bs2.om",
                 "ascend/ssd_resnet34_bs2.om.json", "magicmind/ssd_resnet34_model_force_float32_false_2",
                 "magicmind/ssd_resnet34_model_force_float32_false_2.json"]:
        assert (workdir / path).is_file(), path
    annotated = len(json.loads((workdir / "ssd_bin" / "manifest.json").read_text())["images"])
    assert annotated == len(list((workdir / "ssd_bin").glob("*.bin")))
    for name in BACKENDS:
        assert (workdir / "results" / f"{name}_summary.json").is_file()
        assert len(list((workdir / "results" / name).glob("*_1.bin"))) == annotated
        assert (workdir / "eval" / name / "eval.json").is_file()
        for ext in ("md", "json", "csv", "png"):
            assert (workdir / "bench" / f"{name}.{ext}").is_file(), (name, ext)


def test_report_is_consistent_with_the_files(first_run):
    """Each backend's row holds what its own files say: AP recomputed here with pycocotools (the run
    uses faster-coco-eval) from that backend's detections.json against the run's annotation file,
    and the throughput of its bench json. The APs differ between backends, so a row fed from the
    wrong backend's folder, or a stale stage, shows."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    workdir = first_run.workdir
    report = load_report(workdir)
    export = next(s for s in report["stages"] if s["name"] == "export")
    sidecar = json.loads((workdir / "ssd_resnet34.onnx.json").read_text())
    assert export["data"]["max_abs_diff"] == max(d["max_abs"] for d in sidecar["validation"]["diffs"])
    gt = COCO(str(workdir / "annotations" / "bbox_only_instances_val2017.json"))
    aps = {}
    for row in report["accuracy"]:
        dets = gt.loadRes(str(workdir / "eval" / row["backend"] / "detections.json"))
        evaluator = COCOeval(gt, dets, "bbox")
        evaluator.evaluate(), evaluator.accumulate()
        evaluator.summarize()
        aps[row["backend"]] = row["AP"]
        assert row["AP"] == pytest.approx(evaluator.stats[0], abs=1e-6), row["backend"]
        assert row["AP50"] == pytest.approx(evaluator.stats[1], abs=1e-6), row["backend"]
    assert len({round(ap, 3) for ap in aps.values()}) > 1  # the rows can tell the backends apart
    for name in BACKENDS:
        bench = json.loads((workdir / "bench" / f"{name}.json").read_text())
        expected = {str(r["batch_size"]): r["throughput"] for r in bench["rows"] if r["status"] == "ok"}
        assert report["throughput"][name] == expected and set(expected) == {"1", "2"}
    assert "| batch size | onnxruntime | openvino | ascend | magicmind |" in first_run.result.output


def test_accuracy_gate_compares_with_onnxruntime(first_run):
    report = load_report(first_run.workdir)
    rows = {r["backend"]: r for r in report["accuracy"]}
    assert set(rows) == set(BACKENDS)
    assert rows["onnxruntime"]["AP"] == pytest.approx(1.0, abs=1e-9)  # the GT are its own detections
    assert rows["onnxruntime"]["delta_vs_onnxruntime"] == 0.0 and rows["onnxruntime"]["gate"] == "ok"
    assert rows["ascend"]["delta_vs_onnxruntime"] == 0.0 and rows["ascend"]["gate"] == "ok"  # ORT behind the fake
    assert abs(rows["openvino"]["delta_vs_onnxruntime"]) <= report["ap_gate"] and rows["openvino"]["gate"] == "ok"
    drifted = rows["magicmind"]
    assert drifted["AP"] < 0.9 and drifted["delta_vs_onnxruntime"] == pytest.approx(drifted["AP"] - 1.0, abs=1e-9)
    assert drifted["gate"] == "FLAGGED"
    line = next(ln for ln in (first_run.workdir / "report.md").read_text().splitlines()
                if ln.startswith(f"| magicmind | {drifted['AP']:.4f}"))
    assert line.endswith(f"| {drifted['AP50']:.4f} | {drifted['delta_vs_onnxruntime']:+.4f} | FLAGGED |")


def test_second_run_reuses_every_stage(first_run, with_fakes):
    started = time.perf_counter()
    result = invoke(with_fakes, first_run.env, first_run.args)
    assert result.exit_code == 1 and "magicmind: AP 0.7000" in result.output  # still flagged, still failing
    stages = load_report(first_run.workdir)["stages"]
    assert len(stages) == 4 + 4 * len(BACKENDS) + 1  # + gate:ascend: its default build is fp16 (ATC force_fp16)
    assert all(s["reused"] for s in stages), [s["name"] for s in stages if not s["reused"]]
    assert "reused (inputs unchanged)" in result.output
    assert time.perf_counter() - started < 30


def test_changed_input_reruns_only_downstream_stages(first_run, tmp_path, with_fakes):
    import shutil

    workdir = tmp_path / "copy"
    shutil.copytree(first_run.workdir, workdir)
    state = json.loads((workdir / "pipeline_state.json").read_text())
    assert "bench:onnxruntime" in state
    args = ["run", "--coco", str(first_run.coco), "--backends", "onnxruntime", *COMMON, "--bench-duration", "0.3",
            "--workdir", str(workdir)]
    result = invoke(with_fakes, first_run.env, args)
    assert result.exit_code == 0, result.output
    statuses = {s["name"]: s["reused"] for s in load_report(workdir)["stages"]}
    assert statuses["export"] and statuses["infer:onnxruntime"] and statuses["eval:onnxruntime"]
    assert statuses["bench:onnxruntime"] is False


def test_missing_tools_are_skipped_with_a_note(tmp_path, monkeypatch):
    from ssdconvert.backends import get

    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    for var in ("ASCEND_TOOLKIT_HOME", "ASCEND_HOME_PATH", "NEUWARE_HOME", "SSDCONVERT_MAGICMIND_PYTHON"):
        monkeypatch.delenv(var, raising=False)
    assert "atc not found" in get("ascend").missing()
    assert "cannot import Cambricon's magicmind wheel" in get("magicmind").missing()
    assert get("onnxruntime").missing() is None


def test_unknown_backend_is_a_one_line_error(tmp_path):
    result = CliRunner().invoke(cli, ["run", "--backends", "tensorrt", "--workdir", str(tmp_path)])
    assert result.exit_code == 1 and "unknown backend(s) tensorrt" in result.output


def test_second_detector_runs_end_to_end_and_old_names_work(tmp_path):
    """ssd-resnet50 goes through every stage with no model-specific code in the pipeline; `atc` is
    an old name for the Ascend backend (skipped here: no ATC on PATH)."""
    result = CliRunner().invoke(cli, ["run", "--model", "ssd-resnet50", "--images", "4", "--bs", "1,2",
                                      "--bench-duration", "0.2", "--workers", "1", "--backends", "onnxruntime,atc",
                                      "--workdir", str(tmp_path)], env={"PATH": "/usr/bin:/bin"})
    # named in --backends but ATC is not installed: everything else ran, and the run says why it failed
    assert result.exit_code == 1, result.output
    assert result.output.strip().splitlines()[-1].startswith(
        "Error: 1 backend(s) did not pass: ascend: compile:ascend: ascend skipped: atc not found")
    assert result.output.count("note: 'atc' is deprecated as a backend name; use 'ascend'") == 1
    report = load_report(tmp_path)
    assert report["config"]["model_name"] == "ssd-resnet50" and report["config"]["backends"] == ["onnxruntime", "ascend"]
    assert [s["name"] for s in report["stages"]] == [
        "data", "prepare-json", "preprocess", "export", "compile:onnxruntime", "infer:onnxruntime",
        "eval:onnxruntime", "bench:onnxruntime", "compile:ascend"]
    assert json.loads((tmp_path / "ssd_resnet50.onnx.json").read_text())["model"] == "ssd-resnet50"
    assert json.loads((tmp_path / "eval" / "onnxruntime" / "eval.json").read_text())["model"] == "ssd-resnet50"
    assert set(report["throughput"]["onnxruntime"]) == {"1", "2"}


def test_atc_tool_option_finds_atc_outside_path(tmp_path, monkeypatch, launcher, fake_vendor_env):
    from ssdconvert.backends import get

    tool = launcher(tmp_path / "cann", "atc", "atc.py")
    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    for var in ("PYTHONPATH", "SSDCONVERT_AIS_BENCH_PYTHON"):
        monkeypatch.setenv(var, fake_vendor_env[var])
    monkeypatch.delenv("ASCEND_TOOLKIT_HOME", raising=False)
    monkeypatch.delenv("ASCEND_HOME_PATH", raising=False)
    assert get("ascend").configured(tool=str(tool)).missing() is None  # as `run --atc-tool` gives it
    assert "atc not found" in get("ascend").missing()


def test_each_backends_own_options_reach_the_run_config(tmp_path, monkeypatch):
    """`run` takes each backend's options from the registry; --atc-tool beats --tool ascend=..., as before."""
    import ssdconvert.pipeline as pipeline
    from ssdconvert.backends.ascend import AscendOptions
    from ssdconvert.backends.magicmind import MagicMindOptions
    from ssdconvert.errors import SsdConvertError

    seen = []

    def capture(cfg, say):
        seen.append(cfg)
        raise SsdConvertError("captured")

    monkeypatch.setattr(pipeline, "run_and_report", capture)
    CliRunner().invoke(cli, ["run", "--workdir", str(tmp_path)])
    CliRunner().invoke(cli, ["run", "--soc", "Ascend910B1", "--atc-tool", "/opt/atc", "--tool", "ascend=/other",
                             "--tool", "magicmind=/opt/mm", "--mlu-arch", "mtp_592", "--workdir", str(tmp_path)])
    default, chosen = (cfg.options for cfg in seen)
    assert default["ascend"] == AscendOptions(soc="Ascend310P3") and default["magicmind"] == MagicMindOptions()
    assert chosen["ascend"] == AscendOptions(tool="/opt/atc", soc="Ascend910B1")
    assert chosen["magicmind"] == MagicMindOptions(tool="/opt/mm", mlu_arch="mtp_592")
    assert not {"soc", "tools"} & set(pipeline.RunConfig.__dataclass_fields__)
