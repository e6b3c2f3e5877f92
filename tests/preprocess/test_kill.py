"""Killing `ssdconvert preprocess` (the parent only, as `kill PID` does) loses nothing and blocks nothing.

Before: the pool's workers outlived a killed parent, stuck on their task queue, and held the
directory lock they inherited, so every re-run was refused for as long as they lived.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ENTRIES = 160  # one large image under many names: slow enough to kill mid-run, cheap to check


@pytest.fixture(scope="module")
def big_coco(tmp_path_factory) -> Path:
    """A COCO json of ENTRIES names that all hard-link one 2000x1500 noisy JPEG (slow to decode)."""
    root = tmp_path_factory.mktemp("big")
    images = root / "val2017"
    images.mkdir()
    noise = np.random.default_rng(0).integers(0, 256, (1500, 2000, 3), dtype=np.uint8)
    Image.fromarray(noise).save(images / "source.jpg", quality=95)
    doc = {"images": [], "annotations": [], "categories": [{"id": 1, "name": "person"}]}
    for k in range(1, ENTRIES + 1):
        os.link(images / "source.jpg", images / f"{k:012d}.jpg")
        doc["images"].append({"id": k, "file_name": f"{k:012d}.jpg", "width": 2000, "height": 1500})
        doc["annotations"].append({"id": k, "image_id": k, "category_id": 1, "bbox": [1, 1, 5, 5],
                                   "area": 25, "iscrowd": 0})
    (root / "instances.json").write_text(json.dumps(doc))
    return root


def _command(root: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "ssdconvert", "preprocess", "--val_annotation", str(root / "instances.json"),
            "--data_root", str(root / "val2017"), "--save_path", str(out), "--workers", "2", "--no-progress"]


def _children(pid: int) -> set[int]:
    found = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found |= {int(c) for c in (task / "children").read_text().split()}
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def _wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads worker pids from Linux /proc")
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["KILL", "TERM"])
def test_killed_parent_takes_its_workers_and_the_rerun_resumes_byte_identical(big_coco, tmp_path, sig):
    out = tmp_path / "bins"
    proc = subprocess.Popen(_command(big_coco, out), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: len(list(out.glob("*.bin"))) >= 4, 120, "the first .bin files")
        workers = _children(proc.pid)
        assert len(workers) == 2
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode != 0
    if sig == signal.SIGTERM:  # handled like Ctrl-C: one line that says what to do
        assert "interrupted; finished .bin files" in stderr and "run the same command again" in stderr
        assert "Traceback" not in stderr
    _wait_for(lambda: not any(_alive(w) for w in workers), 10, "the workers to die with their parent")
    written = len(list(out.glob("*.bin")))
    assert 4 <= written < ENTRIES, "the run must be cut short for this test to mean anything"

    rerun = subprocess.run(_command(big_coco, out), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert f"already complete  {written}" in rerun.stdout
    bins = sorted(out.glob("*.bin"))
    assert len(bins) == ENTRIES and not list(out.glob(".*.tmp-*"))
    # every name holds the same picture, so every file must equal one reference tensor, byte for byte
    from preprocess.reference import reference_tensor

    expected = reference_tensor(big_coco / "val2017" / "source.jpg").tobytes()
    assert all(p.read_bytes() == expected for p in bins)
    assert json.loads((out / "manifest.json").read_text())["images"][0]["stem"] == "000000000001"


def test_a_second_concurrent_run_names_the_process_holding_the_lock(big_coco, tmp_path):
    out = tmp_path / "bins"
    first = subprocess.Popen(_command(big_coco, out), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for(lambda: any(out.glob("*.bin")), 120, "the first run to start writing")
        second = subprocess.run(_command(big_coco, out), capture_output=True, text=True, timeout=120)
    finally:
        first.kill()
        first.communicate(timeout=60)
    assert second.returncode == 1
    assert f"another `ssdconvert preprocess` (pid {first.pid}) is writing to {out}" in second.stderr
