"""ModelSpec: everything a pipeline stage needs to know about one detector."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Mapping

from postprocess.heads.spec import DetectionHead
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
    """A registered detector: its network, input and transform (preprocess), head (postprocess) and
    checkpoint layouts. The head declares the outputs and how they become detections."""

    name: str
    description: str
    build: Callable[[], "torch.nn.Module"]
    input: TensorSpec
    transform: ImageTransform
    head: DetectionHead
    # Map any supported checkpoint layout onto the native state_dict keys.
    to_native_layout: Callable[[dict], dict]
    # Map a backbone-only file (e.g. torchvision resnet34) onto native backbone keys.
    backbone_to_native: Callable[[dict], dict] | None = None
    backbone_file: str = ""
    flops_per_image: float = 0.0  # 2 x multiply-accumulates, batch 1
    reference_map: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def outputs(self) -> tuple[TensorSpec, ...]:
        return tuple(TensorSpec(o.name, o.shape) for o in self.head.outputs)

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.outputs)

    @property
    def num_classes(self) -> int:  # including background
        return self.head.num_classes

    @property
    def background_index(self) -> int:
        return self.head.background_index

    @property
    def priors(self) -> PriorSpec:
        """The default-box spec of an NVIDIA-style head (AttributeError for other heads)."""
        return self.head.priors  # type: ignore[attr-defined]

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
                "decoder": t.decoder,
                "resize": f"{t.resize} {t.width}x{t.height}" + ("" if t.keep_aspect else ", aspect not kept"),
                "scale": t.scale,
                "mean": list(t.mean),
                "std": list(t.std),
            },
            "outputs": [{"name": o.name, "shape": ["N", *o.shape], "dtype": o.dtype} for o in self.outputs],
            "head": self.head.describe(),
            "gflops_per_image": round(self.flops_per_image / 1e9, 2),
            "backbone_file": self.backbone_file,
            "reference_map": self.reference_map,
            "notes": list(self.notes),
        }
