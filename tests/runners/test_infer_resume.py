"""`infer` is crash-safe like preprocess: an error (a full disk) or an interruption keeps the finished
batches, says how to resume, and the same command then finishes to a byte-identical result.

Before: a full disk raised a bare OSError traceback and the temporary folder holding every finished
output was deleted.
"""

from __future__ import annotations

import errno

import numpy as np
import pytest
from click.testing import CliRunner

from ssdconvert.cli import cli
from stageio import results as results_module  # where infer writes each result file

FILES, BATCH = 10, 2  # five batches


def _tree(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _invoke(model, inputs, output):
    return CliRunner().invoke(cli, ["infer", "--model", str(model), "--input", str(inputs), "--output", str(output),
                                    "--batchsize", str(BATCH), "--no-progress"])


@pytest.fixture
def disk_fills_after(monkeypatch):
    """Let `count` output files be written, then fail every write with ENOSPC, as a full disk does."""
    real = results_module.write_atomic

    def arm(count: int):
        calls = {"n": 0}

        def write(path, array):
            calls["n"] += 1
            if calls["n"] > count:
                raise OSError(errno.ENOSPC, "No space left on device", str(path))
            real(path, array)

        monkeypatch.setattr(results_module, "write_atomic", write)
        return lambda: monkeypatch.setattr(results_module, "write_atomic", real)

    return arm


def test_full_disk_keeps_finished_batches_and_the_rerun_is_byte_identical(tmp_path, tiny, tiny_onnx,
                                                                          disk_fills_after):
    inputs = tmp_path / "bins"
    tiny.write_inputs(inputs, FILES)
    clean = tmp_path / "clean"
    assert _invoke(tiny_onnx, inputs, clean).exit_code == 0

    output = tmp_path / "result"
    heal = disk_fills_after(9)  # batches 1 and 2 (2 images x 2 outputs each) fit, batch 3 fails half-way
    result = _invoke(tiny_onnx, inputs, output)
    assert result.exit_code == 1
    line = result.output.strip().splitlines()[-1]
    assert line.startswith("Error: cannot write 000000000005_1.bin: No space left on device; 2 of 5 batches are "
                           "finished and kept in") and line.endswith("run the same command again to resume")
    assert "Traceback" not in result.output and not output.exists()
    kept = tmp_path / ".result.partial"
    assert sorted(p.name for p in kept.glob("*.bin")) == sorted(
        f"{i:012d}_{k}.bin" for i in range(1, 5) for k in (0, 1)) + ["000000000005_0.bin"]

    heal()
    result = _invoke(tiny_onnx, inputs, output)
    assert result.exit_code == 0, result.output
    assert "resumed: 2 of 5 batches were finished by an interrupted run" in result.output
    assert _tree(output) == _tree(clean)  # byte for byte, every file
    assert not kept.exists() and not list(tmp_path.glob(".result*"))


def test_interrupt_keeps_finished_batches(tmp_path, tiny, tiny_onnx, monkeypatch):
    inputs = tmp_path / "bins"
    tiny.write_inputs(inputs, FILES)
    real = results_module.write_atomic
    calls = {"n": 0}

    def write(path, array):
        calls["n"] += 1
        if calls["n"] == 7:
            raise KeyboardInterrupt
        real(path, array)

    monkeypatch.setattr(results_module, "write_atomic", write)
    result = _invoke(tiny_onnx, inputs, tmp_path / "result")
    assert result.exit_code == 1
    assert "Error: interrupted; 1 of 5 batches are finished and kept" in result.output


def test_other_settings_do_not_reuse_an_interrupted_run(tmp_path, tiny, tiny_onnx, disk_fills_after):
    inputs = tmp_path / "bins"
    tiny.write_inputs(inputs, FILES)
    heal = disk_fills_after(6)
    assert _invoke(tiny_onnx, inputs, tmp_path / "result").exit_code == 1
    heal()
    tiny.write_inputs(inputs, FILES, seed=1)  # same names, new content: the kept outputs are stale
    result = _invoke(tiny_onnx, inputs, tmp_path / "result")
    assert result.exit_code == 0 and "resumed" not in result.output
    first = np.fromfile(tmp_path / "result" / "000000000001_0.bin", np.float32).reshape(4, -1)
    image = np.fromfile(inputs / "000000000001.bin", np.float32).reshape(3, tiny.SIZE, tiny.SIZE)
    np.testing.assert_allclose(first, tiny.reference_outputs(image)[0], rtol=1e-5, atol=1e-5)
