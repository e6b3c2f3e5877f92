"""Fixtures for the postprocess/eval stage: a synthetic COCO set, its manifest, and result folders."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))  # loop_baseline: the straightforward reference loop

SYNTH_IMAGES = 24  # every 10th without annotations, one crowd box


@pytest.fixture(scope="session")
def coco(tmp_path_factory):
    """Synthetic COCO set: annotation doc, annotated image records, their normalised GT boxes/labels."""
    from postprocess.images import ImageRef
    from ssdconvert.synth import generate

    ds = generate(tmp_path_factory.mktemp("coco") / "mini", images=SYNTH_IMAGES, seed=3)
    doc = json.loads(ds.annotation_file.read_text())
    label_of = {c["id"]: k + 1 for k, c in enumerate(doc["categories"])}
    annotated = {a["image_id"] for a in doc["annotations"]}
    images = [ImageRef(im["id"], im["file_name"].split(".")[0], im["width"], im["height"])
              for im in doc["images"] if im["id"] in annotated]  # synth names files <id>.jpg, no folders
    boxes, labels = [], []
    for im in images:
        anns = [a for a in doc["annotations"] if a["image_id"] == im.id]
        xywh = np.array([a["bbox"] for a in anns], dtype=np.float64)
        scale = np.array([im.width, im.height, im.width, im.height], dtype=np.float64)
        boxes.append(np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1) / scale)
        labels.append(np.array([label_of[a["category_id"]] for a in anns]))
    return SimpleNamespace(annotation=ds.annotation_file, doc=doc, images=images, boxes=boxes, labels=labels,
                           all_images=len(doc["images"]))


def write_manifest_for(folder: Path, images, annotation: Path | str, model: str = "ssd-resnet34") -> Path:
    from preprocess.manifest import ImageRecord, InputInfo, Manifest, write_manifest
    from stageio.tensor import TensorSpec

    folder.mkdir(parents=True, exist_ok=True)
    info = InputInfo(TensorSpec("image", (3, 300, 300), "float32"), layout="CHW", channel_order="RGB",
                     resize="pil_bilinear", keep_aspect=False, scale=1 / 255, mean=(0.485, 0.456, 0.406),
                     std=(0.229, 0.224, 0.225), normalized=True)
    records = [ImageRecord(im.id, f"{im.stem}.jpg", im.stem, im.width, im.height) for im in images]
    return write_manifest(folder, Manifest(model=model, input=info, annotation_path=str(annotation),
                                           annotation_sha256="", data_root=str(folder), images=records))


def write_results(folder: Path, images, ploc: np.ndarray, plabel: np.ndarray, dtype: str = "float32") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for k, im in enumerate(images):
        ploc[k].astype(dtype).tofile(folder / f"{im.stem}_0.bin")
        plabel[k].astype(dtype).tofile(folder / f"{im.stem}_1.bin")
    return folder


def write_summary(result: Path, input_folder: Path | str) -> Path:
    """The runner's sibling summary, as ais_bench writes it (only `args` matters to eval)."""
    path = result.parent / f"{result.name}_summary.json"
    path.write_text(json.dumps({"args": ["python3", "-m", "ais_bench", "--model", "m.om", "--input",
                                         str(input_folder), "--output", str(result.parent), "--output_dirname",
                                         result.name], "throughput": 1.0}))
    return path


@pytest.fixture(scope="session")
def exact(coco):
    """ploc/plabel encoding every GT box exactly (the round-trip outputs)."""
    from postprocess.heads.nvidia_ssd.synthetic import exact_outputs

    return exact_outputs(coco.boxes, coco.labels)


@pytest.fixture
def workspace(tmp_path, coco, exact):
    """ssd_bin/manifest.json + out/result/ (float32) + out/result_summary.json, ready for `eval`."""
    manifest = write_manifest_for(tmp_path / "ssd_bin", coco.images, coco.annotation)
    result = write_results(tmp_path / "out" / "result", coco.images, *exact)
    write_summary(result, tmp_path / "ssd_bin")
    return SimpleNamespace(root=tmp_path, manifest=manifest, result=result)


@pytest.fixture
def files():
    """Writers for manifest, result files and runner summary (importable helpers don't work under
    --import-mode=importlib)."""
    return SimpleNamespace(manifest=write_manifest_for, results=write_results, summary=write_summary)


@pytest.fixture
def run_cli():
    from click.testing import CliRunner

    from ssdconvert.cli import cli

    def run(*args: str):
        return CliRunner().invoke(cli, ["eval", *args], catch_exceptions=False)

    return run
