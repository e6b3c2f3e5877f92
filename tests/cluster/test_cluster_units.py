"""The cluster engine's parts that need no Ray: device ids, shards, packing, journal, resources, reports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ssdconvert import backends
from ssdconvert.backends.ascend import AscendOptions
from ssdconvert.cluster.devices import _slot
from ssdconvert.cluster.journal import Journal, cell_key
from ssdconvert.cluster.resources import capacity, cpu_cores_per_cell, request
from ssdconvert.cluster.shards import SHARD_BYTES, plan
from ssdconvert.cluster.transport import digest_of, model_files, pack, relative_files, unpack
from ssdconvert.errors import SsdConvertError


def test_commands_without_cluster_never_import_ray():
    code = ("import sys; from click.testing import CliRunner; from ssdconvert.cli import cli; "
            "import ssdconvert.cluster; "
            "[CliRunner().invoke(cli, [c, '--help']) for c in ('bench', 'infer', 'run')]; "
            "CliRunner().invoke(cli, ['--help']); print('ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_cluster_without_ray_installed_is_one_error_line(tmp_path):
    model = tmp_path / "m.onnx"
    model.write_bytes(b"x")
    code = ("import sys; sys.modules['ray'] = None; from ssdconvert.cli import main; "
            f"sys.argv = ['ssdconvert', 'infer', '--model', {str(model)!r}, '--input', {str(tmp_path)!r}, "
            f"'--output', {str(tmp_path / 'out')!r}, '--cluster', 'local']; main()")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 1
    assert out.stderr.strip().splitlines()[-1] == ("Error: --cluster needs Ray: pip install 'ssdconvert[cluster]' "
                                                   "(ray==2.60.0, as constraints.txt pins)")


@pytest.mark.parametrize("backend, physical, mask, logical", [
    ("ascend", "3", None, "3"),  # no mask: the host's numbering
    ("ascend", "3", "", "3"),
    ("ascend", "3", "3", "0"),  # Ray set the mask to the assigned NPU: it is device 0 inside the task
    ("magicmind", "5", "4,5,6", "1"),  # a node started with MLU_VISIBLE_DEVICES=4,5,6: MLU 5 is device 1
])
def test_the_device_a_vendor_tool_takes_is_the_position_in_the_visible_mask(backend, physical, mask, logical):
    assert backends.get(backend).cluster_device(physical, mask) == logical


def test_a_device_outside_the_mask_is_refused():
    with pytest.raises(SsdConvertError, match="not in the visible-devices mask"):
        backends.get("magicmind").cluster_device("2", "4,5")


def test_mlu_slots_are_claimed_one_per_task_and_released(tmp_path, monkeypatch):
    monkeypatch.setattr("tempfile.gettempdir", lambda: str(tmp_path))
    with _slot("node1", "MLU", 2) as first, _slot("node1", "MLU", 2) as second, _slot("node2", "MLU", 2) as other:
        assert (first, second, other) == (0, 1, 0)
        with pytest.raises(SsdConvertError, match="every MLU slot of this node"):
            with _slot("node1", "MLU", 2):
                pass
    with _slot("node1", "MLU", 2) as again:
        assert again == 0


def test_shards_are_runs_of_consecutive_batches_a_few_per_device():
    assert plan(list(range(12)), devices=2, batch_bytes=1) == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9], [10, 11]]
    assert plan([0, 1, 2, 5, 6, 7], devices=1, batch_bytes=1) == [[0, 1], [2], [5, 6], [7]]  # never across a gap
    assert plan(list(range(8)), devices=1, batch_bytes=SHARD_BYTES // 2 + 1) == [[k] for k in range(8)]  # byte cap
    assert plan([], devices=4, batch_bytes=1) == []


def test_packed_files_unpack_to_the_same_tree(tmp_path):
    (tmp_path / "a" / "side").mkdir(parents=True)
    (tmp_path / "a" / "x.bin").write_bytes(b"\x00\x01\x02")
    (tmp_path / "a" / "side" / "x.bin").write_bytes(b"")
    (tmp_path / "a" / "manifest.json").write_text("{}")
    pairs = relative_files(tmp_path / "a", sorted((tmp_path / "a").rglob("*.*")))
    packed = pack(pairs)
    assert packed.nbytes == 5 and packed.data.dtype == np.uint8
    unpack(packed, tmp_path / "b")
    for rel, path in pairs:
        assert (tmp_path / "b" / rel).read_bytes() == path.read_bytes()
    with pytest.raises(SsdConvertError, match="outside"):
        relative_files(tmp_path / "a", [tmp_path / "elsewhere.bin"])
    with pytest.raises(SsdConvertError, match="outside"):
        unpack(type(packed)((("../escaped.bin", 0, 1),), packed.data), tmp_path / "c")


def test_the_digest_covers_names_and_contents(tmp_path):
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    a.write_bytes(b"1")
    b.write_bytes(b"1")
    base = digest_of([("a.bin", a)])
    assert digest_of([("b.bin", b)]) != base and digest_of([("a.bin", b)]) == base
    b.write_bytes(b"2")
    assert digest_of([("a.bin", b)]) != base


def test_a_model_travels_with_the_files_its_runtime_reads(tmp_path):
    xml = tmp_path / "m.xml"
    for name in ("m.xml", "m.bin", "m.xml.json", "other.bin"):
        (tmp_path / name).write_text(name)
    assert model_files(xml) == [xml, tmp_path / "m.xml.json", tmp_path / "m.bin"]
    om = tmp_path / "m.om"
    om.write_text("om")
    assert model_files(om) == [om]


def test_the_journal_keeps_finished_cells_and_ignores_a_cut_line(tmp_path):
    path = tmp_path / ".x.cells.jsonl"
    journal = Journal(path)
    key = cell_key(model="d", batch=1, precision=None)
    assert key == cell_key(precision=None, batch=1, model="d") and key != cell_key(model="d", batch=2, precision=None)
    journal.add(key, {"status": "ok", "row": {"batch_size": 1}})
    with open(path, "a") as fh:
        fh.write('{"key": "cut sh')  # a crash in the middle of a line
    again = Journal(path)
    assert again.done(key) and again.records[key]["row"] == {"batch_size": 1} and len(again.records) == 1


def _node(alive=True, **resources):
    return {"Alive": alive, "NodeID": "n", "Resources": resources}


def _resource(name: str):
    return backends.get(name).cluster_resource


def test_every_backend_names_the_resource_its_cells_hold():
    npu, mlu = _resource("ascend"), _resource("magicmind")
    assert (npu.name, npu.visible_env, npu.ray_assigns_ids) == ("NPU", "ASCEND_RT_VISIBLE_DEVICES", True)
    assert (mlu.name, mlu.visible_env, mlu.ray_assigns_ids) == ("MLU", "MLU_VISIBLE_DEVICES", False)
    for name in ("onnxruntime", "openvino"):
        assert _resource(name).name == "CPU" and not _resource(name).device
    assert request(npu, 8) == {"num_cpus": 0, "resources": {"NPU": 1}}
    assert request(_resource("openvino"), 8) == {"num_cpus": 8}


def test_a_composite_model_holds_what_its_parts_backend_holds():
    from ssdconvert.backends.composite import CompositeBackend

    wrapped = CompositeBackend(backends.get("magicmind"))
    assert wrapped.cluster_resource == _resource("magicmind") and wrapped.cluster_device("7", "6,7") == "1"


def test_capacity_counts_devices_and_whole_cpu_cells_on_live_nodes():
    nodes = [_node(CPU=8, NPU=4), _node(CPU=4), _node(alive=False, CPU=64, NPU=8), _node(CPU=0, MLU=2)]
    cores = cpu_cores_per_cell(nodes)
    assert cores == 4  # every core of the smallest CPU node: two timed cells never share cores
    npu, cpu, mlu = (_resource(n) for n in ("ascend", "onnxruntime", "magicmind"))
    assert (capacity(nodes, npu, cores), capacity(nodes, cpu, cores), capacity(nodes, mlu, cores)) == (4, 3, 2)


def test_a_cell_carries_its_backends_typed_options_and_they_decide_its_key():
    import pickle

    from ssdconvert.cluster.requests import BenchRequest
    from ssdconvert.cluster.schedule import Cell
    from ssdconvert.cluster.sweep import _key
    from ssdconvert.cluster.transport import Bundle

    ascend = backends.get("ascend").configured(soc="Ascend310P3", dym_batch=True, tool="/opt/atc")
    request = BenchRequest(Bundle("/m", "m.onnx", "d" * 16, 4), 8, 8, 1.0, 0, "0")
    cell = pickle.loads(pickle.dumps(Cell("k", "fp16 bs 8", "bench", (request,), ascend)))  # as Ray ships it
    assert type(cell.backend) is type(ascend)
    assert cell.backend.options == AscendOptions(tool="/opt/atc", soc="Ascend310P3", dym_batch=True)
    assert cell.resource.name == "NPU" and cell.args == (request,)
    assert _key(request, ascend) == _key(request, cell.backend)
    assert _key(request, ascend) != _key(request, ascend.configured(soc="Ascend910B"))
    assert _key(request, ascend) != _key(request, ascend.configured(dym_batch=False))


def test_a_cluster_report_shows_host_and_device_and_marks_lost_and_cancelled_cells(tmp_path):
    from ssdconvert import backends
    from ssdconvert.cluster.adapter import bench_report, write_bench

    row = {"batch_size": 1, "status": "ok", "throughput": 10.0, "wall_throughput": 9.0, "runs": 3, "seconds": 0.3,
           "latency_ms": {k: 100.0 for k in ("min", "max", "mean", "median", "percentile(99%)")} | {"count": 3}}
    place = {"host": "atlas-2", "node": "abcd", "resource": "NPU", "physical": "5", "logical": "0"}
    cells = {1: {"status": "ok", "result": {"row": row, "runtime": {"ais_bench": "x"}, "label": "ais_bench",
                                            "machine": {}}, "placement": place, "failures": ["attempt 1: lost"]},
             2: {"status": "failed", "reason": "FAILED after 3 attempts (...)"},
             4: {"status": "cancelled", "reason": "interrupted by the user"}}
    model = tmp_path / "ssd.onnx"
    model.write_bytes(b"onnx")
    report = bench_report(model, backends.get("ascend"), None, [1, 2, 4, 8], 1.0, 1, cells, None)
    assert [(r.batch_size, r.status) for r in report.rows] == [(1, "ok"), (2, "failed"), (4, "skipped"),
                                                                (8, "skipped")]
    assert report.stopped_early and report.failure == "batch size 2: FAILED after 3 attempts (...)"
    assert report.machine["cluster_cells"] == [{"batch_size": 1, **place, "lost_attempts": ["attempt 1: lost"]}]
    write_bench(report, tmp_path, "r")
    assert "| atlas-2 | NPU 5 |" in (tmp_path / "r.md").read_text()
    lines = (tmp_path / "r.csv").read_text().splitlines()
    assert lines[0].endswith(",host,device") and lines[1].endswith(",atlas-2,NPU 5")
    assert json.loads((tmp_path / "r.json").read_text())["rows"][0]["device"] == "NPU 5"
