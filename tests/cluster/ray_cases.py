"""The Ray tests, run by test_ray_cluster.py inside a private network namespace (only `lo`).

Not collected on its own (the name does not start with test_): the launcher re-executes pytest on
this file under `unshare -n`, so every socket of the shared multi-node cluster below binds
127.0.0.1, which the first test checks. One `ray.cluster_utils.Cluster` (ray==2.60.0, a
DeveloperAPI: one head and several raylets on this machine, each with its own resources) serves
the module: a head with no CPUs (the driver's), two "hosts" with one NPU each (the second started
with `ASCEND_RT_VISIBLE_DEVICES=4`, so its NPU is physical id 4), and two 1-core CPU nodes. Every
node's object store is capped at STORE bytes; where /dev/shm has less room than that, Ray 2.60 puts
the store in its temp dir instead (below 10 GB it only warns: `ray/_private/services.py`,
`determine_plasma_store_config`), so small CI containers work too.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

STORE = 100 << 20  # bytes of object store per node: 5 nodes stay far below RAM/2 and a small /dev/shm
HEALTH = {"health_check_initial_delay_ms": 0, "health_check_period_ms": 500, "health_check_failure_threshold": 2,
          "timeout_ms_task_wait_for_death_info": 100}


@dataclass
class Harness:
    cluster: object
    npu: list  # ray._private.node.Node of the NPU hosts
    cpu: list  # the CPU nodes

    def add_cpu_node(self):
        """A fresh 1-core node, used once so the scheduler knows it before the next test counts on it."""
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        from ssdconvert.cluster import tasks

        node = self.cluster.add_node(num_cpus=1, object_store_memory=STORE)
        self.cluster.wait_for_nodes()
        pinned = NodeAffinitySchedulingStrategy(node.node_id, soft=False)
        ray.get(tasks._host_cell.options(scheduling_strategy=pinned).remote("noop", (), None))
        self.cpu.append(node)
        return node


@pytest.fixture(scope="module")
def harness(tmp_path_factory, fake_vendor_env):
    saved = dict(os.environ)
    os.environ.update(fake_vendor_env)  # fake atc on PATH, fake ais_bench importable: the nodes inherit it
    os.environ.update(SSDCONVERT_CLUSTER_CACHE=str(tmp_path_factory.mktemp("cluster_cache")),
                      RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32))
    import ray
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "object_store_memory": STORE,
                                                            "include_dashboard": False, "_system_config": HEALTH})
    npu = [cluster.add_node(num_cpus=0, resources={"NPU": 1}, object_store_memory=STORE)]
    os.environ["ASCEND_RT_VISIBLE_DEVICES"] = "4"  # this host's NPU 4 is the one it offers
    npu.append(cluster.add_node(num_cpus=0, resources={"NPU": 1}, object_store_memory=STORE))
    del os.environ["ASCEND_RT_VISIBLE_DEVICES"]
    os.environ["MLU_VISIBLE_DEVICES"] = "6,7"  # the first CPU node also offers two MLUs, 6 and 7
    cpu = [cluster.add_node(num_cpus=1, resources={"MLU": 2}, object_store_memory=STORE)]
    del os.environ["MLU_VISIBLE_DEVICES"]
    cpu.append(cluster.add_node(num_cpus=1, object_store_memory=STORE))
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    try:
        yield Harness(cluster, npu, cpu)
    finally:
        ray.shutdown()
        cluster.shutdown()
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory) -> Path:
    """A dynamic-batch conv model on 3x8x8 float32 inputs with two outputs (fast on any backend)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
    nodes = [helper.make_node("Conv", ["image", "w"], ["ploc"], pads=[1, 1, 1, 1]),
             helper.make_node("Sigmoid", ["ploc"], ["plabel"])]
    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 8, 8])
    outputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", 4, 8, 8]) for n in ("ploc", "plabel")]
    graph = helper.make_graph(nodes, "tiny", [image], outputs, [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    model.ir_version = 7
    path = tmp_path_factory.mktemp("tiny") / "tiny.onnx"
    onnx.save(model, path)
    return path


@pytest.fixture(scope="module")
def tiny_om(tiny_onnx, harness) -> Path:
    """A static batch-2 .om of the tiny model from the fake atc."""
    from ssdconvert.backends.ascend.compile import build_om

    return build_om(tiny_onnx, "Ascend310P3", batch=2, output=tiny_onnx.with_name("tiny_bs2.om")).primary


@pytest.fixture(scope="module")
def tiny_bins(tmp_path_factory) -> Path:
    """11 raw float32 3x8x8 inputs (no manifest, as ais_bench takes them): 6 batches of 2, the last padded."""
    folder = tmp_path_factory.mktemp("tiny_bins")
    rng = np.random.default_rng(1)
    for i in range(11):
        rng.standard_normal((3, 8, 8)).astype(np.float32).tofile(folder / f"img{i}.bin")
    return folder


def _listening() -> list[str]:
    """Local addresses of every listening TCP socket and bound UDP socket in this network namespace."""
    found = []
    for table, v6 in (("tcp", False), ("tcp6", True), ("udp", False), ("udp6", True)):
        try:
            lines = Path(f"/proc/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            address, state = fields[1].split(":")[0], fields[3]
            if table.startswith("tcp") and state != "0A":  # 0A: LISTEN
                continue
            raw = bytes.fromhex(address)
            raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))  # each 32-bit word is little-endian
            found.append(socket.inet_ntop(socket.AF_INET6 if v6 else socket.AF_INET, raw))
    return found


def _loopback(ip: str) -> bool:
    return ip.startswith("127.") or ip in ("::1", "::ffff:127.0.0.1") or ip.startswith("::ffff:127.")


def test_every_ray_socket_listens_on_loopback_only(harness):
    found = _listening()
    assert len(found) >= 10, found  # GCS, 5 raylets, object managers, workers, agents
    assert [ip for ip in found if not _loopback(ip)] == []


def test_a_sweep_spreads_over_the_npu_hosts_and_matches_a_local_sweep(harness, tiny_onnx, tmp_path, with_fakes):
    from ssdconvert.backends.ascend import AscendOptions
    from ssdconvert.bench import run_bench
    from ssdconvert.cluster import connected
    from ssdconvert.cluster.sweep import bench_sweep

    options = dict(backend="ascend", options=AscendOptions(soc="Ascend310P3"), batch_sizes=[1, 2, 3, 4],
                   duration=0.05, warmup=0)
    with connected("auto"):
        remote = bench_sweep(tiny_onnx, precisions=["fp16", "fp32"], output_dir=tmp_path / "cluster", **options)
    with with_fakes():
        local = [run_bench(tiny_onnx, precision=p, output_dir=tmp_path / "local", name=f"local_{p}", **options)
                 for p in ("fp16", "fp32")]
    cells = [c for report in remote for c in report.machine["cluster_cells"]]
    assert len(cells) == 8
    by_node = {}
    for cell in cells:
        by_node.setdefault(cell["node"], set()).add((cell["physical"], cell["logical"]))
    first, second = (n.node_id for n in harness.npu)
    assert set(by_node) == {first, second}  # both hosts ran cells, nothing ran on a CPU node
    assert by_node[first] == {("0", "0")} and by_node[second] == {("4", "0")}  # NPU 4 is device 0 behind its mask
    for mine, theirs in zip(remote, local):
        assert [(r.batch_size, r.status) for r in mine.rows] == [(r.batch_size, r.status) for r in theirs.rows]
        assert all(r.status == "ok" for r in mine.rows)
        for a, b in zip(mine.rows, theirs.rows):
            assert set(a.latency_ms) == set(b.latency_ms) and a.runs >= 1 and b.runs >= 1
            assert a.throughput > 0 and a.build_command[0].endswith("atc") == b.build_command[0].endswith("atc")
            assert f"--input_shape=image:{a.batch_size},3,8,8" in a.build_command
            assert "--soc_version=Ascend310P3" in a.build_command  # the typed options reached the cell
            assert a.host == socket.gethostname() and a.device in ("NPU 0", "NPU 4") and not b.host
        assert mine.precision == theirs.precision and mine.label == theirs.label
        saved = json.loads(Path(mine.outputs["json"]).read_text())
        assert [r["device"] for r in saved["rows"]] == [r.device for r in mine.rows]
        assert "| Host | Device |" in Path(mine.outputs["md"]).read_text().replace("Host | Device", "Host | Device")
    assert not list((tmp_path / "cluster").glob(".*.cells.jsonl"))  # finished: no journal left


@pytest.mark.parametrize("backend, transport", [("ascend", "object-store"), ("onnxruntime", "auto")])
def test_infer_on_the_cluster_writes_the_local_layout_byte_for_byte(harness, tiny_onnx, tiny_om, tiny_bins, tmp_path,
                                                                    with_fakes, monkeypatch, backend, transport):
    from ssdconvert.cluster import connected
    from ssdconvert.cluster.shards import run_infer as cluster_infer
    from ssdconvert.infer import run_infer

    model = tiny_om if backend == "ascend" else tiny_onnx
    monkeypatch.setenv("SSDCONVERT_CLUSTER_TRANSPORT", transport)
    if backend == "ascend":
        with connected("auto"):
            remote = cluster_infer(model, tiny_bins, tmp_path / "cluster", batchsize=2, progress=False)
    else:  # through the command line
        from click.testing import CliRunner

        from ssdconvert.cli import cli

        ran = CliRunner().invoke(cli, ["infer", "--model", str(model), "--input", str(tiny_bins), "--output",
                                       str(tmp_path / "cluster"), "--batchsize", "2", "--cluster", "auto"])
        assert ran.exit_code == 0 and "wrote 11 x 2 files" in ran.output, ran.output
        remote = SimpleNamespace(summary_path=tmp_path / "cluster_summary.json", files=11, batch=2, runs=6, padded=1)
    with with_fakes():
        local = run_infer(model, tiny_bins, tmp_path / "local", batchsize=2, progress=False)
    mine = sorted(p.name for p in (tmp_path / "cluster").iterdir())
    assert mine == sorted(p.name for p in (tmp_path / "local").iterdir()) and len(mine) == 22
    for name in mine:
        assert (tmp_path / "cluster" / name).read_bytes() == (tmp_path / "local" / name).read_bytes(), name
    a, b = (json.loads(p.read_text()) for p in (remote.summary_path, local.summary_path))
    assert set(a) == set(b) and len(a["filesinfo"]) == len(b["filesinfo"]) == 11  # one entry per sample (ais_bench)
    assert a["NPU_compute_time"]["count"] == b["NPU_compute_time"]["count"] == 6
    assert a["args"][a["args"].index("--input") + 1] == b["args"][b["args"].index("--input") + 1]
    shards = a["ssdconvert"]["cluster"]["shards"]
    wanted = {n.node_id for n in (harness.npu if backend == "ascend" else harness.cpu)}
    assert {s["node"] for s in shards} <= wanted and len({s["node"] for s in shards}) == 2
    assert sorted(k for s in shards for k in range(s["batches"][0], s["batches"][1] + 1)) == list(range(6))
    assert (remote.files, remote.batch, remote.runs, remote.padded) == (local.files, local.batch, local.runs,
                                                                        local.padded)


def test_mlu_cells_claim_distinct_slots_mapped_through_the_nodes_mask(harness):
    """MLU is a custom resource (no ids from Ray): a cell takes the first slot no other holder has locked, and the
    slot maps through the node's mask. The test holds slot 0 itself (the lock file a concurrent cell would hold),
    so the outcome does not depend on two Ray workers starting within one another's hold time."""
    import fcntl

    from ssdconvert import backends
    from ssdconvert.cluster import connected
    from ssdconvert.cluster.devices import slot_lock
    from ssdconvert.cluster.schedule import Cell, run_cells

    magicmind = backends.get("magicmind")
    node = harness.cpu[0].node_id

    def one_cell(name: str) -> dict:
        with connected("auto") as session:
            run = run_cells(session, [Cell(name, name, "noop", (0.0,), magicmind)], lambda cell, result, place: None,
                            progress=False)
        (outcome,) = run.outcomes
        assert outcome.placement["node"] == node
        return outcome.placement

    with open(slot_lock(node, "MLU", 0), "w") as held:  # another cell holds MLU 6 (slot 0)
        fcntl.flock(held, fcntl.LOCK_EX)
        busy = one_cell("m-busy")
    free = one_cell("m-free")  # released: the first slot again
    assert (busy["physical"], busy["logical"]) == ("7", "1")
    assert (free["physical"], free["logical"]) == ("6", "0")


def _remove_a_busy_cpu_node(harness, monkeypatch, delay: float = 0.8) -> dict:
    """Once two cells are submitted (one per CPU node; each runs >= 1.5 s), remove a CPU node `delay` s later:
    the cell on it is lost with it."""
    import threading

    from ssdconvert.cluster import tasks

    state = {"submitted": 0, "removed": None}
    submit = tasks.submit

    def remove() -> None:
        victim = harness.cpu.pop()
        harness.cluster.remove_node(victim)
        state["removed"] = victim.node_id

    def counting(*args, **kwargs):
        state["submitted"] += 1
        if state["submitted"] == 2:
            threading.Timer(delay, remove).start()
        return submit(*args, **kwargs)

    monkeypatch.setattr(tasks, "submit", counting)
    return state


def test_a_lost_node_loses_no_finished_cell_and_its_cells_are_retried_marked_and_resumed(harness, tiny_onnx, tmp_path,
                                                                                        monkeypatch):
    from ssdconvert.cluster import connected
    from ssdconvert.cluster.sweep import bench_sweep

    options = dict(backend="onnxruntime", batch_sizes=[1, 2, 3, 4], duration=1.5, warmup=0, name="tiny")
    journal = tmp_path / "out" / ".tiny.cells.jsonl"
    with connected("auto"):
        with monkeypatch.context() as patch:
            state = _remove_a_busy_cpu_node(harness, patch)
            (retried,) = bench_sweep(tiny_onnx, output_dir=tmp_path / "retried", **options)
        assert state["removed"] is not None
        assert all(r.status == "ok" for r in retried.rows)
        cells = retried.machine["cluster_cells"]
        lost = [c for c in cells if c["lost_attempts"]]
        assert len(lost) == 1 and lost[0]["node"] != state["removed"]  # ran again on the node that is left
        harness.add_cpu_node()

        with monkeypatch.context() as patch:
            state = _remove_a_busy_cpu_node(harness, patch)
            (marked,) = bench_sweep(tiny_onnx, output_dir=tmp_path / "out", max_attempts=1, **options)
        failed = [r for r in marked.rows if r.status == "failed"]
        assert len(failed) == 1 and "FAILED after 1 attempts" in failed[0].error, [r.error for r in marked.rows]
        assert marked.stopped_early and len(marked.ok_rows) == 3
        assert len(journal.read_text().splitlines()) == 3  # the finished cells are kept for the next run
        harness.add_cpu_node()

        lines = []
        (resumed,) = bench_sweep(tiny_onnx, output_dir=tmp_path / "out", progress=lines.append, **options)
    assert any("resuming: 3 of 4 cells finished earlier" in line for line in lines)
    assert [line.split(":")[0] for line in lines if " bs " in line] == [f"fp32 bs {failed[0].batch_size}"]
    assert all(r.status == "ok" for r in resumed.rows) and not journal.exists()
    kept = {r.batch_size: r.throughput for r in marked.ok_rows}
    assert {r.batch_size: r.throughput for r in resumed.rows if r.batch_size in kept} == kept  # not re-run


def test_ctrl_c_cancels_the_outstanding_cells_and_leaves_a_consistent_report(harness, tiny_onnx, tmp_path):
    from ssdconvert.cluster import connected
    from ssdconvert.cluster.sweep import bench_sweep

    def interrupt(line: str) -> None:
        if " bs " in line:
            raise KeyboardInterrupt

    with connected("auto"):
        (report,) = bench_sweep(tiny_onnx, backend="onnxruntime", batch_sizes=[1, 2, 3, 4], duration=0.3, warmup=0,
                                name="tiny", output_dir=tmp_path, progress=interrupt)
    assert report.stopped_early and report.failure == "interrupted by the user"
    saved = json.loads((tmp_path / "tiny.json").read_text())
    assert saved["stopped_early"] and saved["failure"] == "interrupted by the user"
    statuses = sorted(r["status"] for r in saved["rows"])
    assert statuses.count("ok") >= 1 and set(statuses) <= {"ok", "skipped"}
    assert len((tmp_path / ".tiny.cells.jsonl").read_text().splitlines()) == statuses.count("ok")


def test_run_sends_its_infer_and_bench_stages_to_the_cluster_and_reports_where(harness, tiny_onnx, tiny_bins,
                                                                               tmp_path):
    from ssdconvert import backends
    from ssdconvert.cluster import connected
    from ssdconvert.pipeline import PipelineReport, RunConfig, _bench, _infer
    from ssdconvert.pipeline.cache import StageResult
    from ssdconvert.pipeline.report import markdown
    from ssdconvert.zoo import get_spec

    cfg = RunConfig(tmp_path, batch_sizes=(1, 2), bench_duration=0.05, cluster="auto")
    target = backends.get("onnxruntime")
    with connected("auto"):
        figure, data, outputs = _bench(tiny_onnx, "onnxruntime", cfg, get_spec("ssd-resnet34"), tmp_path / "bench",
                                       target, "fp32", None)
        inferred = _infer(tiny_onnx, target, tiny_bins, tmp_path / "results", 2, cfg.cluster)
    cpu_nodes = {n.node_id for n in harness.cpu}
    assert set(data["where"]) == {1, 2} and all(w.endswith(" CPU") for w in data["where"].values())
    shards = json.loads(Path(inferred[2][1]).read_text())["ssdconvert"]["cluster"]["shards"]
    assert {s["node"] for s in shards} <= cpu_nodes
    report = PipelineReport(config={"model_name": "tiny", "workdir": str(tmp_path)}, random_weights=True)
    report.stages.append(StageResult("bench:onnxruntime", "k", 1.0, figure, data=json.loads(json.dumps(data))))
    text = markdown(report, None)
    assert "## Where each batch size ran (--cluster)" in text and f"| 1 | {data['where'][1]} |" in text
