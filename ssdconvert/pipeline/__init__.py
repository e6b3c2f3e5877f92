"""The main job: every stage in order inside one work directory, with a short report."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class StageRecord:
    name: str
    seconds: float
    figure: str


@dataclass
class PipelineReport:
    workdir: Path
    stages: list[StageRecord] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def run_pipeline(workdir: str | Path, *, model_name: str = "ssd-resnet34", checkpoint=None, backbone=None,
                 trust: bool = False, images: int = 16, bs: int = 4) -> PipelineReport:
    """synth data -> export + validation (later stages are added as they land)."""
    from ssdconvert.checkpoints import build_model
    from ssdconvert.export import export_onnx
    from ssdconvert.synth import generate
    from ssdconvert.zoo import get_spec

    workdir = Path(workdir)
    report = PipelineReport(workdir)
    spec = get_spec(model_name)

    started = time.perf_counter()
    data = generate(workdir / "data", images=images, overwrite=True)
    report.stages.append(StageRecord("synth", time.perf_counter() - started,
                                     f"{data.images} images, {data.annotations} boxes"))

    started = time.perf_counter()
    model, weights = build_model(spec, checkpoint, backbone=backbone, trust=trust)
    result = export_onnx(model, spec, workdir / f"{spec.name.replace('-', '_')}.onnx", weights=weights, batch=bs)
    report.stages.append(StageRecord("export", time.perf_counter() - started,
                                     f"{result.onnx_path.name}, max abs diff vs PyTorch "
                                     f"{result.validation.max_abs:.2g} (bs 1 and {bs})"))
    report.notes.append(f"weights: {weights.label()}")
    return report
