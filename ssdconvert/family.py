"""Which detector family each input of a command names, and that they all name the same one.

Three things can say it, and a command that reads more than one of them stops when they differ
(ssd-vgg16 bins differ from ssd-resnet34 ones in colour order, mean and std; its outputs in names
and head): the `--model` option; an input folder's manifest.json (`model`); and the model file,
through its records (an .onnx's export record `<onnx>.json`, or the build or quantize record of a
built model naming the ONNX it came from, or a composite descriptor), else through its output names
(ssd-vgg16's bbox_deltas/cls_logits against the ploc/plabel of both ResNet SSDs). Each is a `Claim`;
`agree` returns the family they share or names two that differ.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from ssdconvert.errors import SsdConvertError


@dataclass(frozen=True)
class Claim:
    families: frozenset[str]  # one family, or the few a model's output names leave
    subject: str  # what says so, for the message: "--model", "the inputs in bins/ (manifest.json)"

    def describe(self) -> str:
        return f"{self.subject} is {' or '.join(sorted(self.families))}"


def option_claim(name: str | None) -> Claim | None:
    """What --model names (an unknown name is refused as such, before any comparison)."""
    from ssdconvert.zoo import get_spec

    return Claim(frozenset([get_spec(name).name]), "--model") if name else None


def manifest_claim(manifest, folder: str | Path) -> Claim | None:
    """What a preprocess manifest names (None when it names no zoo family)."""
    from ssdconvert.zoo import model_names

    name = getattr(manifest, "model", None)
    return Claim(frozenset([name]), f"the inputs in {folder} (manifest.json)") if name in model_names() else None


def model_claim(model: str | Path) -> Claim | None:
    """What a model's records name: its own, or those of the ONNX it was built from (None: no record says)."""
    from ssdconvert.zoo import model_names

    model = Path(model)
    for _ in range(3):  # model -> its build or quantize record -> the source ONNX's export record
        if model.name.endswith(".composite.json"):
            name = _read(model).get("model")
            return Claim(frozenset([name]), f"the model {model.name}") if name in model_names() else None
        record = _read(Path(f"{model}.json"))
        if record.get("model") in model_names():
            return Claim(frozenset([record["model"]]), f"the model {model.name} (its record {model.name}.json)")
        source = (record.get("source_onnx") or {}).get("path") if isinstance(record.get("source_onnx"), dict) \
            else record.get("source")
        if not source or Path(source) == model:
            return None
        model = Path(source)
    return None


def outputs_claim(model: str | Path, names: Iterable[str]) -> Claim | None:
    """The families whose outputs a model's output names are (None when they are no family's)."""
    from ssdconvert.zoo import all_specs

    have = set(names)
    families = frozenset(s.name for s in all_specs() if set(s.output_names) == have)
    return Claim(families, f"the model {Path(model).name} (by its outputs {', '.join(sorted(have))})") \
        if families else None


def onnx_outputs_claim(onnx: str | Path) -> Claim | None:
    from ssdconvert.backends.onnxinfo import load_onnx

    return outputs_claim(onnx, [o.name for o in load_onnx(onnx, weights=False).graph.output])


def agree(claims: Sequence[Claim | None], remedy: str = "") -> str | None:
    """The family every claim allows (None when no claim narrows it to one); SsdConvertError naming the two
    that differ, and `remedy`."""
    given = [c for c in claims if c is not None]
    for k, first in enumerate(given):
        for other in given[k + 1:]:
            if not first.families & other.families:
                raise SsdConvertError(f"{first.describe()} but {other.describe()}: they must be the same detector "
                                      f"(other preprocessing, other outputs){f'; {remedy}' if remedy else ''}")
    common = frozenset.intersection(*(c.families for c in given)) if given else frozenset()
    return next(iter(common)) if len(common) == 1 else None


def _read(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
