"""manifest.json: the contract between preprocess and every later stage.

Written beside the .bin files. Versioned; readers reject unknown schema versions.
Version 2 adds the decoder (pil | cv2) and raw pixel order of the input, the decoded size of each
image (heads that rescale by the decoded image need it) and the OpenCV version. Version 3 adds
what resize-and-pad models need: per image the resized size, the scale factors and the padding,
and the side inputs written beside the images (e.g. `im_info/<stem>.bin`, a second model input).
Version 4 is the exact mode of a resize-and-pad model (each image padded only to its own multiple
of 32): the input shape has dynamic dimensions (null: (3, null, null)), and each image's tensor
shape is its resized size plus its padding (`Manifest.image_shape`), fields version 3 already has.
Only such manifests are written as version 4, so every other one stays readable by older
ssdconvert; versions 1 and 2 are still read (PIL decoder, decoded size = json size, no geometry,
no side inputs).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from preprocess.errors import PreprocessError
from stageio.tensor import TensorSpec

SCHEMA = "ssdconvert.manifest"
VERSION = 3  # of a manifest with a fixed input shape
DYNAMIC_VERSION = 4  # of one whose input shape differs per image (exact mode)
READABLE_VERSIONS = (1, 2, 3, 4)
FILE_NAME = "manifest.json"
DTYPES = ("float32", "float16", "uint8")  # what an input file may hold


@dataclass(frozen=True)
class InputInfo:
    """What one .bin holds: its tensor (`shape` per image in `layout` order; None where the dimension
    differs per image, Manifest.image_shape gives each image's) and how it was made from the image."""

    tensor: TensorSpec  # dtype float32 | float16 | uint8
    layout: str  # CHW for float tensors; HWC for uint8 (device-side normalisation, e.g. AIPP)
    channel_order: str
    resize: str
    keep_aspect: bool
    scale: float
    mean: tuple[float, ...]
    std: tuple[float, ...]
    normalized: bool  # False for uint8: raw resized pixels, normalisation happens on the device
    decoder: str = "pil"  # pil | cv2 (see preprocess.spec.ImageTransform)
    pixel_order: str = ""  # channel order of raw (uint8) pixels; "" = channel_order

    def to_dict(self) -> dict:
        """The manifest's "input" object: the tensor's name, shape and dtype, then the other fields."""
        rest = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "tensor"}
        return {"name": self.tensor.name, "shape": self.tensor.shape, "dtype": self.tensor.dtype, **rest}

    @classmethod
    def from_dict(cls, info: dict) -> "InputInfo":
        rest = {k: v for k, v in info.items() if k not in ("name", "shape", "dtype")}
        return cls(TensorSpec(info["name"], tuple(info["shape"]), info["dtype"]),
                   **{**rest, "mean": tuple(rest["mean"]), "std": tuple(rest["std"])})


@dataclass(frozen=True)
class SideInput:
    """A second (third, ...) model input that preprocess writes per image beside the images:
    `<folder>/<stem>.bin`, `folder` relative to the manifest's directory."""

    tensor: TensorSpec  # with its meaning
    folder: str
    layout: str

    def to_dict(self) -> dict:
        """The manifest's record: name, folder, shape, dtype, layout, meaning."""
        t = self.tensor
        return {"name": t.name, "folder": self.folder, "shape": t.shape, "dtype": t.dtype, "layout": self.layout,
                "meaning": t.meaning}

    @classmethod
    def from_dict(cls, side: dict) -> "SideInput":
        extra = sorted(set(side) - {"name", "folder", "shape", "dtype", "layout", "meaning"})
        if extra:
            raise TypeError(f"unexpected side input field(s) {', '.join(extra)}")
        return cls(TensorSpec(side["name"], tuple(side["shape"]), side["dtype"], meaning=side["meaning"]),
                   folder=side["folder"], layout=side["layout"])


@dataclass(frozen=True)
class ImageRecord:
    id: int
    file_name: str
    stem: str  # file_name cut at the first '.'; the .bin is <stem>.bin
    width: int
    height: int
    decoded_width: int | None = None  # the decoded pixels, when they differ from the json (e.g. EXIF)
    decoded_height: int | None = None
    # resize-and-pad models (version 3): the image as the model saw it, before padding
    resized_width: int | None = None
    resized_height: int | None = None
    scale_x: float | None = None  # resized / decoded width
    scale_y: float | None = None
    pad_bottom: int | None = None  # rows of zeros below the image
    pad_right: int | None = None  # columns of zeros right of it


@dataclass
class Manifest:
    model: str
    input: InputInfo
    annotation_path: str
    annotation_sha256: str
    data_root: str
    images: list[ImageRecord] = field(default_factory=list)
    failures: list[dict] = field(default_factory=list)  # {"id", "file_name", "reason"}
    skipped_without_annotations: int = 0
    pillow_version: str = ""  # resize rounding depends on it (Pillow 13 differs from 9.3-12.x)
    opencv_version: str = ""  # for the cv2 decoder
    side_inputs: list[SideInput] = field(default_factory=list)  # further model inputs, in input order

    def image_shape(self, record: ImageRecord) -> tuple[int, ...]:
        """The tensor shape of one image's file: the input shape, or in the exact mode (C, resized height +
        bottom padding, resized width + right padding)."""
        if not self.input.tensor.dynamic:
            return self.input.tensor.shape
        if record.resized_height is None or record.pad_bottom is None:
            raise PreprocessError(f"manifest image {record.stem} has no resized size and padding, which a dynamic "
                                  "input shape needs")
        return (self.input.tensor.shape[0], record.resized_height + record.pad_bottom,
                record.resized_width + record.pad_right)

    def to_dict(self) -> dict:
        d = {**asdict(self), "input": self.input.to_dict(), "side_inputs": [s.to_dict() for s in self.side_inputs]}
        return {"schema": SCHEMA, "version": DYNAMIC_VERSION if self.input.tensor.dynamic else VERSION, **d}


def write_manifest(directory: str | Path, manifest: Manifest) -> Path:
    """Write manifest.json atomically into `directory`."""
    import os

    path = Path(directory) / FILE_NAME
    tmp = path.with_name(f".{FILE_NAME}.tmp")
    tmp.write_text(json.dumps(manifest.to_dict(), indent=1) + "\n")
    os.replace(tmp, path)
    return path


def read_manifest(path: str | Path) -> Manifest:
    """Read a manifest.json (or the one inside a directory) and check its schema version."""
    path = Path(path)
    if path.is_dir():
        path = path / FILE_NAME
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise PreprocessError(f"cannot read manifest {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise PreprocessError(f"manifest {path} is not valid JSON: {exc}") from None
    if data.get("schema") != SCHEMA:
        raise PreprocessError(f"{path} is not an ssdconvert manifest (schema {data.get('schema')!r})")
    if data.get("version") not in READABLE_VERSIONS:
        raise PreprocessError(
            f"{path} has manifest version {data.get('version')!r}; this ssdconvert reads versions "
            f"{', '.join(map(str, READABLE_VERSIONS))}"
        )
    try:
        return Manifest(
            model=data["model"],
            input=InputInfo.from_dict(data["input"]),
            annotation_path=data["annotation_path"],
            annotation_sha256=data["annotation_sha256"],
            data_root=data["data_root"],
            images=[ImageRecord(**r) for r in data["images"]],
            failures=list(data.get("failures", [])),
            skipped_without_annotations=int(data.get("skipped_without_annotations", 0)),
            pillow_version=str(data.get("pillow_version", "")),
            opencv_version=str(data.get("opencv_version", "")),
            side_inputs=[SideInput.from_dict(side) for side in data.get("side_inputs", [])],
        )
    except (KeyError, TypeError) as exc:
        raise PreprocessError(f"manifest {path} is malformed: {exc}") from None
