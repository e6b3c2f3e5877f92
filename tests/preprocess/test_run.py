"""`ssdconvert preprocess` end to end: output contract, manifest, parallelism, resume, settings clash."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from preprocess.manifest import read_manifest
from preprocess.outdir import PARTIAL_NAME


def test_clean_run_writes_the_reference_bins_and_manifest(cli, coco, tmp_path, h):
    out = tmp_path / "ssd_bin"
    result = cli(*h.preprocess_args(coco, out, "--workers", 2))
    assert result.exit_code == 0, result.output
    kept = h.annotated(coco.doc)
    assert 0 < len(kept) < len(coco.doc["images"])
    assert sorted(p.name for p in out.glob("*.bin")) == sorted(f"{im['file_name'][:-4]}.bin" for im in kept)
    assert all(p.stat().st_size == 1_080_000 for p in out.glob("*.bin"))
    h.assert_matches_reference(out, coco.images, kept)

    m = read_manifest(out)
    assert m.model == "ssd-resnet34" and m.input.tensor.name == "image" and m.input.tensor.shape == (3, 300, 300)
    assert (m.input.tensor.dtype, m.input.layout, m.input.normalized, m.input.resize) == \
        ("float32", "CHW", True, "pil_bilinear")
    assert [(r.id, r.file_name, r.stem, r.width, r.height) for r in m.images] == \
        [(im["id"], im["file_name"], im["file_name"][:-4], im["width"], im["height"]) for im in kept]
    assert m.annotation_sha256 == hashlib.sha256(coco.ann.read_bytes()).hexdigest()
    assert m.annotation_path == str(coco.ann.resolve()) and m.data_root == os.path.realpath(coco.images)
    assert m.skipped_without_annotations == len(coco.doc["images"]) - len(kept) and m.failures == []
    assert not (out / PARTIAL_NAME).exists() and not list(out.glob(".*.tmp-*"))
    assert f"written           {len(kept)}" in result.stdout
    assert "no annotations (--all-images keeps them)" in result.stdout


def test_all_images_and_one_worker_give_the_same_bytes(cli, coco, tmp_path, h):
    one, two = tmp_path / "one", tmp_path / "two"
    assert cli(*h.preprocess_args(coco, one, "--workers", 1, "--all-images")).exit_code == 0
    assert cli(*h.preprocess_args(coco, two, "--workers", 2, "--all-images")).exit_code == 0
    assert len(list(one.glob("*.bin"))) == len(coco.doc["images"])
    assert h.tree_bytes(one) == h.tree_bytes(two)
    assert read_manifest(one).skipped_without_annotations == 0


@pytest.mark.parametrize("dtype, size, layout, shape", [
    ("float16", 540_000, "CHW", (3, 300, 300)),
    ("uint8", 270_000, "HWC", (300, 300, 3)),
])
def test_other_dtypes(cli, coco, tmp_path, h, dtype, size, layout, shape):
    out = tmp_path / dtype
    result = cli(*h.preprocess_args(coco, out, "--dtype", dtype))
    assert result.exit_code == 0, result.output
    assert {p.stat().st_size for p in out.glob("*.bin")} == {size}
    h.assert_matches_reference(out, coco.images, h.annotated(coco.doc)[:6], dtype=dtype)
    m = read_manifest(out)
    t = m.input.tensor
    assert (t.dtype, m.input.layout, t.shape, t.nbytes) == (dtype, layout, shape, size)
    assert m.input.normalized == (dtype != "uint8")


def test_resume_after_a_simulated_crash_equals_a_clean_run(cli, coco, tmp_path, h):
    clean, crashed = tmp_path / "clean", tmp_path / "crashed"
    assert cli(*h.preprocess_args(coco, clean)).exit_code == 0
    assert cli(*h.preprocess_args(coco, crashed)).exit_code == 0
    # What a crash mid-run leaves: the in-progress marker instead of a manifest, temporaries,
    # missing files, and (from a foreign tool such as the reference script) a half-written .bin.
    (crashed / "manifest.json").unlink()
    settings = json.loads(json.dumps({"input": read_manifest(clean).to_dict()["input"],
                                      "data_root": read_manifest(clean).data_root}))
    (crashed / PARTIAL_NAME).write_text(json.dumps(settings))
    bins = sorted(crashed.glob("*.bin"))
    bins[0].write_bytes(bins[0].read_bytes()[:4096])
    bins[1].unlink()
    (crashed / f".{bins[2].stem}.bin.tmp-4242").write_bytes(b"\0" * 1000)
    result = cli(*h.preprocess_args(coco, crashed, "--workers", 2))
    assert result.exit_code == 0, result.output
    assert "written           2" in result.stdout and f"already complete  {len(bins) - 2}" in result.stdout
    assert "removed 1 partial temporary file(s)" in result.stderr
    assert h.tree_bytes(crashed) == h.tree_bytes(clean)
    assert not list(crashed.glob(".*.tmp-*")) and not (crashed / PARTIAL_NAME).exists()


KILLER = """
import os, signal, sys
import stageio.files as writer
real, calls = os.replace, [0]
def replace(src, dst):
    calls[0] += 1
    if calls[0] == 4:  # the 4th file is fully written under its temporary name: die right now
        os.kill(os.getpid(), signal.SIGKILL)
    real(src, dst)
writer.os = type(os)("os_shim"); writer.os.__dict__.update(os.__dict__); writer.os.replace = replace
from ssdconvert.cli import main
sys.argv = ["ssdconvert", *sys.argv[1:]]
main()
"""


def test_resume_after_a_real_kill_equals_a_clean_run(cli, coco, tmp_path, h):
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    assert cli(*h.preprocess_args(coco, clean)).exit_code == 0
    args = [str(a) for a in h.preprocess_args(coco, killed, "--workers", 1)]
    proc = subprocess.run([sys.executable, "-c", KILLER, *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr
    assert len(list(killed.glob("*.bin"))) == 3 and len(list(killed.glob(".*.bin.tmp-*"))) == 1
    assert (killed / PARTIAL_NAME).exists() and not (killed / "manifest.json").exists()
    result = cli(*h.preprocess_args(coco, killed))
    assert result.exit_code == 0, result.output
    assert "already complete  3" in result.stdout
    assert h.tree_bytes(killed) == h.tree_bytes(clean)


def test_existing_bins_made_differently_are_not_mixed_in(cli, coco, tmp_path, h):
    out = tmp_path / "out"
    assert cli(*h.preprocess_args(coco, out)).exit_code == 0
    result = cli(*h.preprocess_args(coco, out, "--dtype", "float16"))
    assert result.exit_code == 1
    assert "holds .bin files made with other settings (dtype 'float32' -> 'float16')" in result.output
    result = cli(*h.preprocess_args(coco, out, "--dtype", "float16", "--overwrite"))
    assert result.exit_code == 0, result.output
    assert read_manifest(out).input.tensor.dtype == "float16"
    assert {p.stat().st_size for p in out.glob("*.bin")} == {540_000}

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "000000000001.bin").write_bytes(b"\0" * 1_080_000)
    result = cli(*h.preprocess_args(coco, foreign))
    assert result.exit_code == 1 and "no manifest.json describes" in result.output


def test_stray_bins_and_size_mismatches_are_warned_about(cli, coco, tmp_path, h):
    doc = coco.doc
    first = h.annotated(doc)[0]
    first["width"], first["height"] = first["height"] + 1, first["width"]
    coco.ann.write_text(json.dumps(doc))
    out = tmp_path / "out"
    assert cli(*h.preprocess_args(coco, out)).exit_code == 0
    np.zeros(270_000, np.float32).tofile(out / "leftover.bin")
    result = cli(*h.preprocess_args(coco, out))
    assert result.exit_code == 0, result.output
    assert "1 .bin file(s) in" in result.stderr and "leftover.bin" in result.stderr
    result = cli(*h.preprocess_args(coco, out, "--overwrite"))
    assert f"1 image(s) differ from their json width/height (first: {first['file_name']}" in result.stderr


def test_missing_inputs_are_one_line_errors(cli, coco, tmp_path, h):
    result = cli("preprocess", "--val-annotation", tmp_path / "nope.json", "--data-root", coco.images,
                 "--save-path", tmp_path / "o")
    assert result.exit_code == 1 and "annotation file" in result.output and "does not exist" in result.output
    result = cli("preprocess", "--val_annotation", coco.ann, "--data_root", tmp_path / "nodir",
                 "--save_path", tmp_path / "o")
    assert result.exit_code == 1 and "--data_root" in result.output and "is not a directory" in result.output
    (tmp_path / "file").write_text("")
    result = cli(*h.preprocess_args(coco, tmp_path / "file"))
    assert result.exit_code == 2 and "is a file" in result.output  # click's usage check
    assert "Traceback" not in result.output
