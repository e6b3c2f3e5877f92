"""The MagicMind backend: the in-process runner over the runtime API, infer, bench (runtime or mm_run).

Runs against tests/fakes: ssdconvert's build script builds on the fake `magicmind` package, which serialises a
placeholder model recording the build; the fake `magicmind.python.runtime` runs its ONNX with ONNX Runtime (so
outputs are real tensors) and refuses what the real runtime would, and mm_run.py benchmarks through that runtime.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from ssdconvert.backends import RunnerError, RunOptions, for_model, get
from ssdconvert.backends.magicmind.compile import build_magicmind
from ssdconvert.backends.magicmind.mm_run import build_argv, parse_output
from ssdconvert.bench import run_bench
from ssdconvert.errors import SsdConvertError
from ssdconvert.infer import run_infer

# the Performance Summary of the mm_run log saved in Cambricon/magicmind_cloud history (commit 3fac70f,
# buildin/cv/classification/resnet50_onnx/data/output_ok/force_float16_true_4_log_perf)
MM_RUN_LOG = """==================== Performance Summary
Iterations: 1363
Host Wall Time (s): 2.79882
MLU Compute Time (s): 2.75295
Throughput (qps): 1947.97
Enqueue Time (ms): min: 0.1 max: 0.3 mean: 0.2 median: 0.2 percentile: (90%) 0.25 (95%) 0.27 (99%) 0.29
MLU Compute Latency (ms): min: 1.957 max: 2.226 mean: 2.0198 median: 2.007 percentile: (90%) 2.09 (95%) 2.117 (99%) 2.163
Trace averages of 1363 runs:
MLU Compute Latency (ms): 9.999 Enqueue: 0.2
"""


def build(tiny_onnx, tmp_path, batch=4, **kw):
    return build_magicmind(tiny_onnx, batch=batch, output=tmp_path / f"tiny_mm_{batch}", **kw).primary


def test_runner_runs_a_static_model_through_the_runtime_api(tmp_path, tiny, tiny_onnx, fake_magicmind):
    model = build(tiny_onnx, tmp_path)
    backend = for_model(model)  # no extension: recognised by the build record
    assert backend.name == "magicmind"
    x = np.random.default_rng(2).standard_normal((4, 3, 8, 8)).astype(np.float32)
    with backend.make_runner(model) as runner:
        assert [(m.name, m.dims, m.dtype) for m in runner.inputs] == [("image", (4, 3, 8, 8), "float32")]
        assert [m.name for m in runner.outputs] == ["ploc", "plabel"] and runner.static_batch == 4
        out = runner.infer({"image": x})
        assert runner.last_compute_ms > 0 and runner.versions()["device"] == "MLU 0"
    for k in range(4):
        loc, cls = tiny.reference_outputs(x[k])
        np.testing.assert_allclose(out["ploc"][k], loc, atol=1e-5)
        np.testing.assert_allclose(out["plabel"][k], cls, atol=1e-5)
    assert not runner.is_active


def test_infer_writes_the_ais_bench_layout(tmp_path, tiny, tiny_onnx, fake_magicmind):
    model = build(tiny_onnx, tmp_path)
    files = tiny.write_inputs(tmp_path / "in", 6)  # batch 4: 2 runs, 2 padding slots
    result = run_infer(model, tmp_path / "in", tmp_path / "out", progress=False)
    assert (result.backend, result.batch, result.runs, result.padded) == ("magicmind", 4, 2, 2)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(f"{f.stem}_{i}.bin" for f in files
                                                                         for i in (0, 1))
    x = np.fromfile(files[5], np.float32).reshape(3, 8, 8)
    np.testing.assert_allclose(np.fromfile(tmp_path / "out" / f"{files[5].stem}_0.bin", np.float32).reshape(4, 64),
                               tiny.reference_outputs(x)[0], atol=1e-5)
    summary = json.loads((tmp_path / "out_summary.json").read_text())
    assert summary["ssdconvert"]["backend"] == "magicmind" and summary["throughput"] > 0
    with pytest.raises(SsdConvertError, match="runs one device per run"):
        run_infer(model, tmp_path / "in", tmp_path / "out2", device="0,1", progress=False)


def test_float16_build_and_shape_mutable_build(tmp_path, tiny, tiny_onnx, fake_magicmind):
    x = np.random.default_rng(3).standard_normal((3, 3, 8, 8)).astype(np.float32)
    loc = np.stack([tiny.reference_outputs(x[k])[0] for k in range(3)])
    mutable = build_magicmind(tiny_onnx, batch=8, dynamic=True, output=tmp_path / "tiny_mm_dyn").primary
    with get("magicmind").make_runner(mutable, RunOptions(batch=3)) as runner:
        assert runner.static_batch == 3  # a mutable batch takes the batch asked for
        np.testing.assert_allclose(runner.infer([x])["ploc"], loc, atol=1e-5)
        with pytest.raises(RunnerError, match=r"enqueue failed .* dim 0 is 9, outside the model's range 1\.\.8"):
            runner.infer([np.zeros((9, 3, 8, 8), np.float32)])
    half = build(tiny_onnx, tmp_path, batch=3, precision="force_float16")
    with get("magicmind").make_runner(half) as runner:
        got = runner.infer([x])["ploc"]
    assert np.abs(got - loc).max() > 0 and np.allclose(got, loc, rtol=2e-3, atol=2e-3)  # fp16 rounding, no more


def test_runner_errors_come_from_the_runtime(tmp_path, tiny_onnx, fake_magicmind, monkeypatch):
    model = build(tiny_onnx, tmp_path)
    bogus = tmp_path / "not_a_model"
    bogus.write_bytes(b"garbage")
    with pytest.raises(RunnerError, match=r"MagicMind cannot load .*not_a_model: \[MMERROR\] .* is not a MagicMind"):
        get("magicmind").make_runner(bogus).activate()
    with pytest.raises(RunnerError, match=r"MLU 1 does not exist here \(1 visible"):
        get("magicmind").make_runner(model, RunOptions(device="1")).activate()
    monkeypatch.setenv("FAKE_MLU_COUNT", "2")
    with get("magicmind").make_runner(model, RunOptions(device="1")) as runner:  # activates MLU 1 first
        runner.infer([np.zeros((4, 3, 8, 8), np.float32)])
        with pytest.raises(RunnerError, match=r"enqueue failed .*data type float64 does not match the model's FLOAT32"):
            runner.infer([np.zeros((4, 3, 8, 8), np.float64)])
        with pytest.raises(RunnerError, match=r"enqueue failed .*dim 0 is 2, the model input has 4"):
            runner.infer([np.zeros((2, 3, 8, 8), np.float32)])
    with pytest.raises(RunnerError, match="MLU id"):
        get("magicmind").make_runner(model, RunOptions(device="CPU"))


def test_the_fake_runtime_refuses_what_the_real_one_would(tmp_path, tiny_onnx, fake_magicmind, monkeypatch):
    import magicmind.python.runtime as mm

    model = mm.Model()
    assert model.create_i_engine(mm.Model.EngineConfig()) is None and model.get_input_names() == []
    assert model.deserialize_from_file(str(build(tiny_onnx, tmp_path))).ok()
    monkeypatch.setenv("FAKE_MLU_COUNT", "2")
    other = mm.Device()
    other.id = 1
    assert other.create_queue() is None  # device 1 is not current until activated
    dev = mm.Device()
    dev.id = 0
    assert dev.active().ok()
    engine = model.create_i_engine(mm.Model.EngineConfig())
    context, queue = engine.create_i_context(), dev.create_queue()
    inputs = context.create_inputs()
    outputs: list = []
    assert not context.enqueue(inputs, outputs, queue).ok()  # no data yet
    inputs[0].from_numpy(np.zeros((4, 3, 8, 8), np.float32))
    assert not inputs[0].to(other).ok() and inputs[0].to(dev).ok()
    assert context.enqueue(inputs, outputs, queue).ok()
    with pytest.raises(RuntimeError, match="sync its queue first"):
        outputs[0].asnumpy()
    assert queue.sync().ok() and outputs[0].asnumpy().shape == (4, 4, 64)


def test_mm_run_output_and_argv_follow_the_published_log(tmp_path):
    summary = parse_output(MM_RUN_LOG)
    assert (summary.throughput, summary.iterations, summary.wall_seconds) == (1947.97, 1363, 2.79882)
    assert summary.compute_ms == {"min": 1.957, "max": 2.226, "mean": 2.0198, "median": 2.007,
                                  "percentile(99%)": 2.163}
    assert parse_output("Iterations: 10\n") is None
    argv = build_argv(tmp_path / "m", 4, [[4, 3, 224, 224]], iterations=1000, device="0", tool=sys.executable)
    assert argv[1:] == ["--magicmind_model", str(tmp_path / "m"), "--iterations", "1000", "--batch_size", "4",
                        "--input_dims", "4,3,224,224", "--devices", "0", "--threads", "1"]


@pytest.mark.parametrize("runtime", [True, False], ids=["runtime", "mm_run"])
def test_bench_builds_one_static_model_per_batch_size(tmp_path, tiny_onnx, fake_magicmind, monkeypatch, runtime):
    if not runtime:
        monkeypatch.setattr("ssdconvert.backends.magicmind.runner.runtime_missing", lambda: "not importable here")
    report = run_bench(tiny_onnx, backend="magicmind", batch_sizes=[1, 2], duration=0.05, output_dir=tmp_path,
                       plot=False)
    assert not report.stopped_early, report.failure
    for row in report.rows:
        assert row.artefact.endswith(f"tiny_dyn_model_force_float32_false_{row.batch_size}")
        assert "--batch_size" in row.build_command and row.runs >= 1
        assert row.throughput == pytest.approx(1000 * row.batch_size / row.latency_ms["mean"])
        assert row.latency_ms["min"] <= row.latency_ms["median"] <= row.latency_ms["max"]
    assert ("mm_run" in report.runtime) != runtime
    if not runtime:
        log = (tmp_path / "tiny_dyn_magicmind_work" / "tiny_dyn_model_force_float32_false_2_bs2.mm_run.log").read_text()
        assert "--input_dims 2,3,8,8" in log and "Throughput (qps):" in log
        assert all(row.wall_throughput > 0 for row in report.rows)  # mm_run's own qps, wall clock


def test_bench_a_mutable_model_until_its_range_ends(tmp_path, tiny_onnx, fake_magicmind, monkeypatch):
    mutable = build_magicmind(tiny_onnx, batch=4, dynamic=True, output=tmp_path / "tiny_mm_dyn").primary
    monkeypatch.setattr("ssdconvert.backends.magicmind.runner.runtime_missing", lambda: "not importable here")
    report = run_bench(mutable, batch_sizes=[1, 4, 8], duration=0.02, output_dir=tmp_path / "b", plot=False)
    assert [r.status for r in report.rows] == ["ok", "ok", "failed"]
    assert "outside the model's range 1..4" in report.failure


def test_fake_mm_run_is_strict(tmp_path, tiny_onnx, fake_magicmind):
    model = build(tiny_onnx, tmp_path)

    def run(*args):
        return subprocess.run([sys.executable, str(fake_magicmind / "mm_run.py"), *args], capture_output=True,
                              text=True, timeout=120)

    assert run("--magicmind_model", str(model), "--fast").returncode == 2
    wrong = run("--magicmind_model", str(model), "--iterations", "2", "--batch_size", "2", "--input_dims", "2,3,8,8")
    assert wrong.returncode == 1 and "[MMERROR]" in wrong.stdout and "dim 0 is 2" in wrong.stdout
    ok = run("--magicmind_model", str(model), "--iterations", "3", "--batch_size", "4", "--input_dims", "4,3,8,8",
             "--devices", "0")
    assert ok.returncode == 0 and parse_output(ok.stdout).iterations >= 3


def make_two_input_onnx(path):
    """image (N,3,8,8) -> ploc (N,4,64) by a 1x1 conv; im_info (N,2) -> info2 = 2 * im_info: Faster R-CNN's two
    inputs sharing the batch."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = np.linspace(-1, 1, 12, dtype=np.float32).reshape(4, 3, 1, 1)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["image", "w"], ["loc"]), helper.make_node("Reshape", ["loc", "shape"], ["ploc"]),
         helper.make_node("Mul", ["im_info", "two"], ["info2"])],
        "two_inputs",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 8, 8]),
         helper.make_tensor_value_info("im_info", TensorProto.FLOAT, ["N", 2])],
        [helper.make_tensor_value_info("ploc", TensorProto.FLOAT, ["N", 4, 64]),
         helper.make_tensor_value_info("info2", TensorProto.FLOAT, ["N", 2])],
        initializer=[numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.array([0, 4, -1], np.int64), "shape"),
                     numpy_helper.from_array(np.array(2, np.float32), "two")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path, w.reshape(4, 3)


def test_a_two_input_model_gets_a_mutable_batch_on_each_input(tmp_path, fake_magicmind, monkeypatch):
    """--dynamic for a two-input model (Faster R-CNN: image, im_info): one dim range per input, and the runtime
    holds each input to its own range."""
    onnx, w = make_two_input_onnx(tmp_path / "two.onnx")
    built = build_magicmind(onnx, batch=4, dynamic=True, output=tmp_path / "two_dyn")
    model = json.loads(built.primary.read_bytes().split(b"\n")[1])
    assert [(i["name"], i["dims"], i["range"]) for i in model["inputs"]] == [
        ("image", [-1, 3, 8, 8], {"min": [1, 3, 8, 8], "max": [4, 3, 8, 8]}),
        ("im_info", [-1, 2], {"min": [1, 2], "max": [4, 2]})]
    rng = np.random.default_rng(4)
    image, info = rng.standard_normal((3, 3, 8, 8)).astype(np.float32), rng.standard_normal((3, 2)).astype(np.float32)
    with get("magicmind").make_runner(built.primary, RunOptions(batch=3)) as runner:
        assert [m.dims for m in runner.inputs] == [(3, 3, 8, 8), (3, 2)]
        out = runner.infer({"image": image, "im_info": info})
    np.testing.assert_allclose(out["ploc"], np.einsum("oc,nchw->nohw", w, image).reshape(3, 4, 64), atol=1e-5)
    np.testing.assert_allclose(out["info2"], 2 * info, atol=1e-6)
    monkeypatch.setattr("ssdconvert.backends.magicmind.runner.runtime_missing", lambda: "not importable here")
    report = run_bench(built.primary, batch_sizes=[2], duration=0.02, output_dir=tmp_path / "b", plot=False)
    assert [r.status for r in report.rows] == ["ok"]  # mm_run got one --input_dims per input
    log = next((tmp_path / "b").rglob("*.mm_run.log")).read_text()
    assert "--input_dims 2,3,8,8 2,2" in log


def test_the_fake_runtime_holds_each_input_to_its_own_range(tmp_path, fake_magicmind):
    """Ranges given per input straight to the build script: im_info's batch runs 2..4, the image's 1..4."""
    from ssdconvert.backends.magicmind.compile import BUILD_SCRIPT

    onnx, _ = make_two_input_onnx(tmp_path / "two.onnx")
    done = subprocess.run([sys.executable, str(BUILD_SCRIPT), "--onnx", str(onnx), "--dynamic_shape", "true",
                           "--input_dims", "2", "3", "8", "8", "--input_dims", "2", "2",
                           "--dim_range_min", "1", "3", "8", "8", "--dim_range_min", "2", "2",
                           "--dim_range_max", "4", "3", "8", "8", "--dim_range_max", "4", "2",
                           "--magicmind_model", str(tmp_path / "m")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    (tmp_path / "m.json").write_text(json.dumps({"tool": "magicmind"}))
    with get("magicmind").make_runner(tmp_path / "m", RunOptions(batch=1)) as runner:
        with pytest.raises(RunnerError, match=r"input 1 shape \[1, 2\]: dim 0 is 1, outside the model's range 2\.\.4"):
            runner.infer({"image": np.zeros((1, 3, 8, 8), np.float32), "im_info": np.zeros((1, 2), np.float32)})


def test_means_and_vars_insert_a_normalisation_that_takes_uint8(tmp_path, tiny, tiny_onnx, fake_magicmind):
    """--means/--vars (append options in build_param.py, one per input; vars are std^2) put a batch norm before the
    first node and make the input UINT8 (model_process.py insert_bn_before_first_node)."""
    mean, std = np.array([123.675, 116.28, 103.53]), np.array([58.395, 57.12, 57.375])
    extra = ["--means", *map(str, mean), "--vars", *map(str, std ** 2)]
    built = build_magicmind(tiny_onnx, batch=2, output=tmp_path / "bn", extra=extra)
    pixels = np.random.default_rng(5).integers(0, 256, (2, 3, 8, 8), dtype=np.uint8)
    with get("magicmind").make_runner(built.primary) as runner:
        assert runner.inputs[0].dtype == "uint8"
        out = runner.infer({"image": pixels})["ploc"]
    x = (pixels - mean[None, :, None, None]) / std[None, :, None, None]
    for k in range(2):
        np.testing.assert_allclose(out[k], tiny.reference_outputs(x[k].astype(np.float32))[0], atol=1e-4)
