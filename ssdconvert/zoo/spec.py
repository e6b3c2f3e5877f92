"""ModelSpec: everything a pipeline stage needs to know about one detector."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Mapping

from postprocess.priors import PriorSpec
from preprocess.spec import ImageTransform

if TYPE_CHECKING:  # torch stays a lazy import
    import torch

StateDict = Mapping[str, "torch.Tensor"]


@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output; `shape` excludes the batch axis."""

    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"

    def with_batch(self, batch: int | str) -> tuple:
        return (batch, *self.shape)


@dataclass(frozen=True)
class ModelSpec:
    """A registered detector: its network, I/O contract, priors and checkpoint layouts."""

    name: str
    description: str
    build: Callable[[], "torch.nn.Module"]
    input: TensorSpec
    outputs: tuple[TensorSpec, ...]
    transform: ImageTransform
    priors: PriorSpec
    num_classes: int  # including background
    background_index: int
    # Map any supported checkpoint layout onto the native state_dict keys.
    to_native_layout: Callable[[dict], dict]
    # Map a backbone-only file (e.g. torchvision resnet34) onto native backbone keys.
    backbone_to_native: Callable[[dict], dict] | None = None
    backbone_file: str = ""
    flops_per_image: float = 0.0  # 2 x multiply-accumulates, batch 1
    reference_map: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.outputs)

    def describe(self) -> dict:
        """The I/O contract as plain data (for `ssdconvert models` and manifests)."""
        t = self.transform
        return {
            "name": self.name,
            "description": self.description,
            "input": {
                "name": self.input.name,
                "shape": ["N", *self.input.shape],
                "dtype": self.input.dtype,
                "layout": "NCHW",
                "channel_order": t.channel_order,
                "resize": f"{t.resize} {t.width}x{t.height}" + ("" if t.keep_aspect else ", aspect not kept"),
                "scale": t.scale,
                "mean": list(t.mean),
                "std": list(t.std),
            },
            "outputs": [{"name": o.name, "shape": ["N", *o.shape], "dtype": o.dtype} for o in self.outputs],
            "classes": {"count": self.num_classes, "background_index": self.background_index},
            "priors": {
                "count": self.priors.num_priors,
                "fig_size": self.priors.fig_size,
                "feat_size": list(self.priors.feat_size),
                "steps": list(self.priors.steps),
                "scales": list(self.priors.scales),
                "aspect_ratios": [list(r) for r in self.priors.aspect_ratios],
                "scale_xy": self.priors.scale_xy,
                "scale_wh": self.priors.scale_wh,
            },
            "gflops_per_image": round(self.flops_per_image / 1e9, 2),
            "backbone_file": self.backbone_file,
            "reference_map": self.reference_map,
            "notes": list(self.notes),
        }
