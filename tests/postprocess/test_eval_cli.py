"""`ssdconvert eval`: the round trip (AP = 1.0), discovery of manifest and annotations, failures."""

from __future__ import annotations

import json

import numpy as np
import pytest


def report_of(ws) -> dict:
    return json.loads((ws.result.parent / "result_eval.json").read_text())


def test_round_trip_gives_ap_1_with_bin_path_alone(workspace, run_cli, coco):
    """GT boxes encoded into ploc/plabel (inverse decode, confident logits) -> AP@[.5:.95] = 1.0,
    evaluated against the original annotation file found through summary -> manifest."""
    res = run_cli("--bin_path", str(workspace.result))
    assert res.exit_code == 0, res.output
    assert "mAP (AP@[.5:.95]): 1.0000" in res.output
    assert "ploc float32, plabel float32, detected from file sizes" in res.output
    assert f"via input folder recorded in {workspace.result.parent / 'result_summary.json'}" in res.output
    report = report_of(workspace)
    assert report["stats"]["AP"] == pytest.approx(1.0, abs=1e-12)
    assert report["stats"]["AP50"] == pytest.approx(1.0, abs=1e-12)
    assert report["images"] == len(coco.images) and report["missing"] == 0
    assert report["annotation"] == str(coco.annotation)
    assert report["detections"] == sum(len(b) for b in coco.boxes)  # crowd box included (ignored by COCOeval)


def test_other_spellings_evaluator_detections_and_output(workspace, run_cli, coco, tmp_path):
    dets, out = tmp_path / "dets.json", tmp_path / "r" / "report.json"
    res = run_cli("--bin-path", str(workspace.result), "--evaluator", "pycocotools", "--detections", str(dets),
                  "--output", str(out), "--val-annotation", str(coco.annotation), "--manifest",
                  str(workspace.manifest.parent))
    assert res.exit_code == 0, res.output
    report = json.loads(out.read_text())
    assert report["evaluator"] == "pycocotools" and report["stats"]["AP"] == pytest.approx(1.0, abs=1e-12)
    rows = json.loads(dets.read_text())
    assert len(rows) == report["detections"] and set(rows[0]) == {"image_id", "category_id", "bbox", "score"}
    assert {r["image_id"] for r in rows} == {im.id for im in coco.images}
    assert f"detections: {dets}" in res.output


def test_float16_results_are_detected(tmp_path, coco, exact, run_cli, files):
    files.manifest(tmp_path / "ssd_bin", coco.images, coco.annotation)
    result = files.results(tmp_path / "out" / "result", coco.images, *exact, dtype="float16")
    files.summary(result, tmp_path / "ssd_bin")
    res = run_cli("--bin_path", str(result))
    assert res.exit_code == 0, res.output
    assert "ploc float16, plabel float16" in res.output
    assert json.loads((tmp_path / "out" / "result_eval.json").read_text())["stats"]["AP"] > 0.99


def test_ascend_nms_variant(workspace, run_cli):
    res = run_cli("--bin_path", str(workspace.result), "--nms", "ascend")
    assert res.exit_code == 0, res.output
    report = report_of(workspace)
    assert report["nms"] == "ascend" and report["stats"]["AP"] == pytest.approx(1.0, abs=1e-12)


def test_missing_results_fail_unless_allowed(workspace, run_cli, coco):
    gone = [coco.images[1].stem, coco.images[4].stem]
    (workspace.result / f"{gone[0]}_1.bin").unlink()
    (workspace.result / f"{gone[1]}_0.bin").unlink()
    (workspace.result / f"{gone[1]}_1.bin").unlink()
    res = run_cli("--bin_path", str(workspace.result))
    assert res.exit_code == 1
    assert f"has no results for 2 of {len(coco.images)} images ({gone[0]}, {gone[1]})" in res.output
    assert "pass --allow-missing" in res.output and "Traceback" not in res.output
    res = run_cli("--bin_path", str(workspace.result), "--allow-missing")
    assert res.exit_code == 0, res.output
    assert "(2 missing, left out)" in res.output
    report = report_of(workspace)
    assert report["missing"] == 2 and report["missing_first"] == gone
    assert report["images"] == len(coco.images) - 2 and report["stats"]["AP"] == pytest.approx(1.0, abs=1e-12)


def test_without_summary_says_which_flag(workspace, run_cli, coco):
    (workspace.result.parent / "result_summary.json").unlink()
    res = run_cli("--bin_path", str(workspace.result))
    assert res.exit_code == 1
    assert "no runner summary" in res.output and "pass --manifest" in res.output
    assert "--val_annotation" in res.output
    assert run_cli("--bin_path", str(workspace.result), "--manifest", str(workspace.manifest)).exit_code == 0
    # --val_annotation alone: the annotated images of that file, stems from their file names
    res = run_cli("--bin_path", str(workspace.result), "--val_annotation", str(coco.annotation))
    assert res.exit_code == 0, res.output
    assert "no manifest found" in res.output and "mAP (AP@[.5:.95]): 1.0000" in res.output


def test_summary_pointing_nowhere(workspace, run_cli, files):
    summary = workspace.result.parent / "result_summary.json"
    summary.write_text(json.dumps({"args": ["python3", "-m", "ais_bench", "--model", "m.om"]}))
    res = run_cli("--bin_path", str(workspace.result))
    assert res.exit_code == 1 and "records no --input folder; pass --manifest" in res.output
    files.summary(workspace.result, workspace.root / "elsewhere")
    res = run_cli("--bin_path", str(workspace.result))
    assert res.exit_code == 1 and "no manifest.json in" in res.output and "pass --manifest" in res.output


def test_relative_input_folder_in_summary(workspace, run_cli, monkeypatch, files):
    monkeypatch.chdir(workspace.root)
    files.summary(workspace.result, "ssd_bin")
    assert run_cli("--bin_path", "out/result").exit_code == 0


def test_annotation_recorded_in_manifest_is_gone(tmp_path, workspace, run_cli, coco, files):
    files.manifest(workspace.root / "ssd_bin", coco.images, tmp_path / "moved.json")
    res = run_cli("--bin_path", str(workspace.result))
    assert res.exit_code == 1
    assert "recorded in" in res.output and "does not exist; pass --val_annotation" in res.output
    assert run_cli("--bin_path", str(workspace.result), "--val_annotation", str(coco.annotation)).exit_code == 0


def test_wrong_size_nan_and_unknown_stems_are_one_line_errors(workspace, run_cli, coco):
    stem = coco.images[3].stem
    good = (workspace.result / f"{stem}_1.bin").read_bytes()
    (workspace.result / f"{stem}_1.bin").write_bytes(good[:-8])
    res = run_cli("--bin_path", str(workspace.result))
    assert res.exit_code == 1 and "wrong size" in res.output and f"{stem}_1.bin" in res.output
    assert len(res.output.strip().splitlines()) == 1

    bad = np.frombuffer(good, np.float32).copy()
    bad[100] = np.nan
    bad.tofile(workspace.result / f"{stem}_1.bin")
    res = run_cli("--bin_path", str(workspace.result))
    assert res.exit_code == 1 and f"{stem}_1.bin (plabel) contains NaN or Inf" in res.output

    (workspace.result / f"{stem}_1.bin").write_bytes(good)
    (workspace.result / "999999999999_0.bin").write_bytes(good[:139712])
    res = run_cli("--bin_path", str(workspace.result))
    assert res.exit_code == 1 and "match no image of the manifest" in res.output


def test_model_from_manifest_and_unknown_model(workspace, run_cli):
    res = run_cli("--bin_path", str(workspace.result), "--model", "nope")
    assert res.exit_code == 1 and "unknown model 'nope'" in res.output
    assert report_of_ok(run_cli("--bin_path", str(workspace.result)), workspace)["model"] == "ssd-resnet34"


def report_of_ok(res, ws) -> dict:
    assert res.exit_code == 0, res.output
    return report_of(ws)


def test_bin_path_must_exist(run_cli, tmp_path):
    res = run_cli("--bin_path", str(tmp_path / "none"))
    assert res.exit_code == 1 and "is not a directory" in res.output


def test_annotation_file_without_the_manifest_images(workspace, run_cli, tmp_path, coco):
    other = dict(coco.doc, images=coco.doc["images"][:3])
    (tmp_path / "other.json").write_text(json.dumps(other))
    res = run_cli("--bin_path", str(workspace.result), "--val_annotation", str(tmp_path / "other.json"))
    assert res.exit_code == 1 and "manifest images are not in" in res.output and "--val_annotation" in res.output


def _spread_over_devices(workspace, names: list[str], sizes: list[int], devices: str) -> list:
    """Move the result files into per-device folders (contiguous blocks in manifest order) with one
    summary each, recording the parent's argv as ais_bench's device processes do."""
    import shutil

    from preprocess.manifest import read_manifest

    stems = [im.stem for im in read_manifest(workspace.manifest.parent).images]
    (workspace.result.parent / "result_summary.json").unlink()
    args = ["python3", "-m", "ais_bench", "--model", "m.om", "--input", str(workspace.manifest.parent),
            "--output", str(workspace.result.parent), "--output_dirname", "result", "--device", devices]
    head, folders = 0, []
    for name, size in zip(names, sizes):
        folder = workspace.result / name
        folder.mkdir()
        for stem in stems[head:head + size]:
            for i in (0, 1):
                shutil.move(workspace.result / f"{stem}_{i}.bin", folder / f"{stem}_{i}.bin")
        (workspace.result / f"{name}_summary.json").write_text(json.dumps({"args": args}))
        head, folders = head + size, folders + [folder]
    assert head == len(stems)
    return folders


def test_per_device_folders_of_a_multi_npu_run(workspace, run_cli, coco):
    """ais_bench --device 0,1,2 writes result/device<N>_<i>/ and result/device<N>_<i>_summary.json
    (no result_summary.json): eval finds the manifest through a device summary and reads every folder."""
    n = len(coco.images)
    folders = _spread_over_devices(workspace, ["device0_0", "device1_1", "device2_2"],
                                   [n // 3 + 1, n // 3, n - 2 * (n // 3) - 1], "0,1,2")
    res = run_cli("--bin_path", str(workspace.result))
    assert res.exit_code == 0, res.output
    assert "results of 3 devices: device0_0, device1_1, device2_2" in res.output
    assert f"via input folder recorded in {workspace.result / 'device0_0_summary.json'}" in res.output
    report = report_of(workspace)
    assert report["images"] == n and report["missing"] == 0 and report["stats"]["AP"] == pytest.approx(1.0, abs=1e-12)

    stem = coco.images[0].stem  # device 0's first image, written again by device 2: two runs in one folder
    (folders[2] / f"{stem}_0.bin").write_bytes((folders[0] / f"{stem}_0.bin").read_bytes())
    res = run_cli("--bin_path", str(workspace.result))
    assert res.exit_code == 1 and f"{stem}_0.bin is in both device0_0/ and device2_2/" in res.output
    (folders[2] / f"{stem}_0.bin").unlink()
    import shutil

    shutil.rmtree(folders[1])  # device 1 wrote nothing: a gap in the run's --device list
    res = run_cli("--bin_path", str(workspace.result))
    assert res.exit_code == 1 and "no folder for device position(s) 1 of 3" in res.output


def test_older_device_folder_names(workspace, run_cli, coco):
    n = len(coco.images)
    _spread_over_devices(workspace, ["device4", "device2"], [-(-n // 2), n - -(-n // 2)], "4,2")
    res = run_cli("--bin_path", str(workspace.result))
    assert res.exit_code == 0, res.output
    assert "results of 2 devices: device4, device2" in res.output and "mAP (AP@[.5:.95]): 1.0000" in res.output


def test_annotation_only_fallback_drops_folders_from_file_names(workspace, run_cli, coco, tmp_path):
    """Without a manifest the result stems come from the annotation's file names by preprocess's
    rule: directories dropped, cut at the first '.' (val2017/000000000139.jpg -> 000000000139)."""
    doc = json.loads(coco.annotation.read_text())
    for k, image in enumerate(doc["images"]):
        image["file_name"] = f"val2017/sub.dir/{image['file_name']}" if k % 2 else f"val2017\\{image['file_name']}"
    moved = tmp_path / "nested.json"
    moved.write_text(json.dumps(doc))
    (workspace.result.parent / "result_summary.json").unlink()
    res = run_cli("--bin_path", str(workspace.result), "--val_annotation", str(moved))
    assert res.exit_code == 0, res.output
    assert "mAP (AP@[.5:.95]): 1.0000" in res.output and report_of(workspace)["images"] == len(coco.images)


def test_progress_bar_knows_the_total_and_can_be_turned_off(workspace, run_cli, coco):
    total = len(coco.images)
    shown = run_cli("--bin_path", str(workspace.result), "--progress")
    assert shown.exit_code == 0, shown.output
    assert f"{total}/{total}" in shown.stderr and "eval: 100%" in shown.stderr
    hidden = run_cli("--bin_path", str(workspace.result), "--no-progress")
    assert hidden.exit_code == 0 and "eval:" not in hidden.stderr
