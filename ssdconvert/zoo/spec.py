"""ModelSpec: everything a pipeline stage needs to know about one detector.

Plain data plus the family's export (`exporter`, a ssdconvert.export.FamilyExport: its graphs and
its comparator; by default the network's forward, compared element by element) and a few optional
family hooks, each None for a family that needs nothing special: `demo_weights` (what random
weights need to exercise every stage), `at_canvas` (a model whose input size is a deployment
choice), `example_inputs` (realistic inputs for timing and validation) and `composite` (the host
stage of a variant split into several device models).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from postprocess.heads.nvidia_ssd.priors import PriorSpec
from postprocess.heads.spec import DetectionHead
from preprocess.spec import ImageTransform
from ssdconvert.export import FamilyExport
from ssdconvert.zoo.raw_outputs import RAW_OUTPUTS
from stageio.tensor import TensorSpec  # one sample's shape: the batch axis is never in `shape`

if TYPE_CHECKING:  # torch stays a lazy import
    import numpy as np
    import torch

StateDict = Mapping[str, "torch.Tensor"]


@dataclass(frozen=True)
class ModelSpec:
    """A registered detector: its network, inputs and transform (preprocess), head (postprocess) and
    checkpoint layouts. The head declares the outputs and how they become detections.

    `input` is the image tensor; `extra_inputs` are per-image side inputs the transform writes
    beside it (Faster R-CNN's im_info), fed to the model in this order after the image.
    """

    name: str
    description: str
    build: Callable[[], "torch.nn.Module"]
    input: TensorSpec
    transform: ImageTransform  # or any transform with the same protocol (preprocess.converter)
    head: DetectionHead
    # Map any supported checkpoint layout onto the native state_dict keys.
    to_native_layout: Callable[[dict], dict]
    # Map a backbone-only file (e.g. torchvision resnet34) onto native backbone keys.
    backbone_to_native: Callable[[dict], dict] | None = None
    backbone_file: str = ""
    flops_per_image: float = 0.0  # 2 x multiply-accumulates, batch 1
    reference_map: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)
    extra_inputs: tuple[TensorSpec, ...] = ()
    # After seeded random weights, when no checkpoint is given: (model, seed) -> None, in place.
    demo_weights: Callable[["torch.nn.Module", int], None] | None = None
    # The family's part of ssdconvert.export.export_model: its graphs and its comparator.
    exporter: FamilyExport = RAW_OUTPUTS
    # (spec, (height, width) or preprocess.spec.EXACT_CANVAS) -> the spec for that input canvas; None: the input
    # size is fixed.
    at_canvas: Callable[["ModelSpec", "tuple[int, int] | str"], "ModelSpec"] | None = None
    # (spec, batch) -> realistic feeds {input name: array} for timing; None: random values are as good.
    example_inputs: Callable[["ModelSpec", int], dict[str, "np.ndarray"]] | None = None
    # variant -> (composite descriptor -> its host stage), for variants split into several device models.
    composite: Mapping[str, Callable[[dict], Any]] = field(default_factory=dict)

    @property
    def inputs(self) -> tuple[TensorSpec, ...]:
        return (self.input, *self.extra_inputs)

    @property
    def dynamic_canvas(self) -> bool:
        """True for the exact mode: the image height and width differ per sample (batch 1, CPU backends)."""
        return None in self.input.shape

    def with_canvas(self, canvas: "tuple[int, int] | str | None") -> "ModelSpec":
        """This spec for an input canvas (height, width) or preprocess.spec.EXACT_CANVAS; itself for None. A
        fixed-size model refuses."""
        if canvas is None:
            return self
        if self.at_canvas is None:
            from ssdconvert.errors import SsdConvertError

            raise SsdConvertError(f"{self.name} has a fixed {self.input.shape[1]}x{self.input.shape[2]} input; "
                                  "--canvas applies to models whose input size is a deployment choice")
        return self.at_canvas(self, canvas)

    def graph_module(self, model: "torch.nn.Module") -> "torch.nn.Module":
        """The module whose forward the main export traces (inputs in `inputs` order, outputs `outputs`)."""
        return self.exporter.graph_module(model)

    def example_feeds(self, batch: int) -> dict[str, "np.ndarray"] | None:
        """Realistic inputs for `batch` images at this spec's canvas, or None where random values serve."""
        return self.example_inputs(self, batch) if self.example_inputs is not None else None

    def feeds_for(self, inputs: Sequence[Any], batch: int) -> dict[str, "np.ndarray"] | None:
        """Realistic inputs for timing `batch` images of a model file whose inputs are `inputs` (metas with
        name and shape; the canvas is read from the image input), or None where random values
        serve as well (ssdconvert.timing.timed_loop)."""
        if self.example_inputs is None:
            return None
        from preprocess.spec import EXACT_CANVAS

        image = next((i for i in inputs if i.name == self.input.name), None)
        if image is None or not image.shape:
            return None
        canvas = tuple(image.shape[1:])
        if None in canvas:  # an exact-mode model: a typical image at its own size
            return self.with_canvas(EXACT_CANVAS).example_feeds(batch) if self.at_canvas else None
        spec = self.with_canvas(canvas) if self.at_canvas else self
        return spec.example_feeds(batch)

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(i.name for i in self.inputs)

    @property
    def outputs(self) -> tuple[TensorSpec, ...]:
        return self.head.outputs

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
        described = {
            "name": self.name,
            "description": self.description,
            "input": {
                "name": self.input.name,
                "shape": ["N", *self.input.shape],
                "dtype": self.input.dtype,
                "layout": "NCHW",
                **self.transform.describe(),
            },
        }
        if self.extra_inputs:
            described["extra_inputs"] = [{"name": i.name, "shape": ["N", *i.shape], "dtype": i.dtype}
                                         for i in self.extra_inputs]
        return {
            **described,
            "outputs": [{"name": o.name, "shape": ["N", *o.shape], "dtype": o.dtype} for o in self.outputs],
            "head": self.head.describe(),
            "gflops_per_image": round(self.flops_per_image / 1e9, 2),
            "backbone_file": self.backbone_file,
            "reference_map": self.reference_map,
            "notes": list(self.notes),
        }
