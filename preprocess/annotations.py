"""The COCO annotation file: read and validate it, select images, map file names to safe paths and stems.

Structural problems are fatal (PreprocessError naming the json path, e.g. `images[3].width`), and
are found before any image is touched. Problems of single images (a file_name that escapes
--data_root, a duplicate stem) are ImageFailures: reported, listed in the manifest, run goes on.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from preprocess.errors import ImageFailure, PreprocessError
from stageio.results import sample_stem

_JSON_TYPES = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "a number",
               float: "a number", type(None): "null"}


@dataclass(frozen=True)
class ImageEntry:
    """One record of the json `images` array (index = its position there)."""

    index: int
    id: int
    file_name: str
    width: int
    height: int


@dataclass(frozen=True)
class AnnotationFile:
    path: Path
    sha256: str
    images: tuple[ImageEntry, ...]
    annotated: frozenset[int]  # image ids with at least one annotation (crowd ones count)
    has_annotations: bool  # the file has an `annotations` array at all
    dangling: int  # annotations whose image_id is not in `images`


@dataclass(frozen=True)
class Job:
    """One image to preprocess: where to read it and which <stem>.bin it becomes."""

    image: ImageEntry
    stem: str
    source: str


def _kind(value: Any) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


def read_json(path: str | Path, what: str = "annotation file") -> tuple[dict, bytes]:
    """Parse a JSON object from `path`; also return the raw bytes (for hashing)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise PreprocessError(f"{what} {path} does not exist") from None
    except OSError as exc:
        raise PreprocessError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    try:
        doc = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise PreprocessError(f"{what} {path} is not valid JSON: {exc.msg} at line {exc.lineno} "
                              f"column {exc.colno}") from None
    except ValueError as exc:  # bad UTF-8 and the like
        raise PreprocessError(f"{what} {path} is not valid JSON text: {exc}") from None
    if not isinstance(doc, dict):
        raise PreprocessError(f"{what} {path}: the top level must be an object, got {_kind(doc)}")
    return doc, raw


def _integer(record: dict, key: str, where: str, minimum: int | None = None) -> int:
    """record[key] as an int (integral floats allowed), else a PreprocessError naming the json path."""
    value = record.get(key)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if key not in record or isinstance(value, bool) or not isinstance(value, int):
        got = "missing" if key not in record else f"got {_kind(value)} {json.dumps(value)[:40]}"
        raise PreprocessError(f"{where}.{key} must be an integer ({got})")
    if minimum is not None and value < minimum:
        raise PreprocessError(f"{where}.{key} must be at least {minimum} (got {value})")
    return value


def require_array(doc: dict, key: str, where: str) -> list:
    value = doc.get(key)
    if not isinstance(value, list):
        got = "missing" if key not in doc else f"got {_kind(value)}"
        raise PreprocessError(f"{where}: '{key}' must be an array ({got})")
    return value


def require_object(value: Any, where: str) -> dict:
    if not isinstance(value, dict):
        raise PreprocessError(f"{where} must be an object (got {_kind(value)})")
    return value


def parse_images(doc: dict, where: str) -> list[ImageEntry]:
    """Validate the `images` array: id, file_name, width, height; ids unique."""
    entries: list[ImageEntry] = []
    first_index: dict[int, int] = {}
    for i, value in enumerate(require_array(doc, "images", where)):
        at = f"{where}: images[{i}]"
        record = require_object(value, at)
        image_id = _integer(record, "id", at)
        file_name = record.get("file_name")
        if not isinstance(file_name, str) or not file_name:
            raise PreprocessError(f"{at}.file_name must be a non-empty string (got {_kind(file_name)})")
        if image_id in first_index:
            raise PreprocessError(f"{at}.id {image_id} duplicates images[{first_index[image_id]}].id")
        first_index[image_id] = i
        entries.append(ImageEntry(i, image_id, file_name, _integer(record, "width", at, 1),
                                  _integer(record, "height", at, 1)))
    return entries


def parse_annotation_image_ids(doc: dict, where: str) -> list[int]:
    """image_id of every record of the `annotations` array (each must be an object with one)."""
    ids = []
    for j, value in enumerate(require_array(doc, "annotations", where)):
        at = f"{where}: annotations[{j}]"
        ids.append(_integer(require_object(value, at), "image_id", at))
    return ids


def load_annotations(path: str | Path) -> AnnotationFile:
    """Read and validate a COCO instances (or bbox_only) json."""
    path = Path(path)
    doc, raw = read_json(path)
    images = parse_images(doc, str(path))
    has_annotations = "annotations" in doc
    image_ids = parse_annotation_image_ids(doc, str(path)) if has_annotations else []
    known = {image.id for image in images}
    return AnnotationFile(path=path, sha256=hashlib.sha256(raw).hexdigest(), images=tuple(images),
                          annotated=frozenset(image_ids) & known, has_annotations=has_annotations,
                          dangling=sum(1 for i in image_ids if i not in known))


def select_images(annotations: AnnotationFile, all_images: bool) -> tuple[list[ImageEntry], int]:
    """The images to preprocess, in json order, and how many were skipped for having no annotation."""
    if all_images:
        return list(annotations.images), 0
    if not annotations.has_annotations:
        raise PreprocessError(f"{annotations.path} has no 'annotations' array, so every image would be "
                              "skipped; pass --all-images to preprocess all images (e.g. for test-dev)")
    chosen = [image for image in annotations.images if image.id in annotations.annotated]
    return chosen, len(annotations.images) - len(chosen)


def stem_of(file_name: str) -> str:
    """The .bin name stem of a COCO file_name: the results layout's stem rule (stageio.results.sample_stem:
    folders dropped, cut at the first '.'), with Windows separators read as folders too
    (sub\\000000397133.jpg -> 000000397133). Every .bin lands flat in --save_path as ais_bench expects."""
    return sample_stem(file_name.replace("\\", "/"))


def resolve_under(root: str, file_name: str) -> str:
    """Real path of `file_name` inside the real directory `root`; refuse anything that escapes it."""
    if "\0" in file_name:
        raise ImageFailure("refused: file_name contains a NUL byte")
    if os.path.isabs(file_name) or file_name.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", file_name):
        raise ImageFailure("refused: file_name is an absolute path; it must be relative to --data_root")
    if ".." in re.split(r"[\\/]", file_name):
        raise ImageFailure("refused: file_name contains '..'; it must stay inside --data_root")
    path = os.path.realpath(os.path.join(root, file_name))
    if os.path.commonpath([root, path]) != root:
        raise ImageFailure("refused: file_name resolves outside --data_root (through a symlink)")
    return path


def plan_jobs(images: list[ImageEntry], data_root: str | Path) -> tuple[list[Job], list[tuple[ImageEntry, str]]]:
    """Jobs for the images whose path and stem are fine; (image, reason) for the others."""
    root = os.path.realpath(data_root)
    jobs: list[Job] = []
    failures: list[tuple[ImageEntry, str]] = []
    owner: dict[str, ImageEntry] = {}
    for image in images:
        stem = stem_of(image.file_name)
        try:
            source = resolve_under(root, image.file_name)
            if not stem:
                raise ImageFailure("file_name gives an empty stem (it starts with '.')")
            if stem in owner:
                first = owner[stem]
                raise ImageFailure(f"duplicate stem: {stem}.bin already belongs to images[{first.index}] "
                                   f"({first.file_name})")
        except ImageFailure as exc:
            failures.append((image, str(exc)))
            continue
        owner[stem] = image
        jobs.append(Job(image, stem, source))
    return jobs, failures
