"""Safe checkpoint loading and key-layout mapping onto a zoo model.

Recipe: torch.load(weights_only=True) -> unwrap ['model'] -> strip 'module.' -> map the layout
(ModelSpec.to_native_layout) -> cast floating tensors to float32 -> strict load with a grouped
mismatch report.
"""

from __future__ import annotations

import logging
import pickle
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from ssdconvert.errors import CheckpointError
from ssdconvert.fileio import sha256_of

if TYPE_CHECKING:
    import torch

    from ssdconvert.zoo.spec import ModelSpec

log = logging.getLogger(__name__)

WRAPPER_KEYS = ("model", "state_dict", "model_state_dict")
MODULE_PREFIX = "module."
DEFAULT_SEED = 0
# torch's weights-only refusals: "Unsupported global: GLOBAL argparse.Namespace was not an allowed
# global" and, for modules it blocks outright, "unsupported GLOBAL posix.system whose module posix is blocked".
REFUSED_GLOBAL = re.compile(r"[Uu]nsupported (?:global: )?GLOBAL ([\w.]+)")
BLOCKED_MODULE = re.compile(r"whose module \S+ is blocked")
UNPICKLER_DETAIL = re.compile(r"WeightsUnpickler error:\s*(\S.*)")
ZIP_MAGIC = b"PK\x03\x04"  # torch.save's default format
PICKLE_PROTO = 0x80  # legacy torch.save (_use_new_zipfile_serialization=False): a pickle, protocol >= 2
MAX_GROUPS = 6  # key groups named in a mismatch message


def read_checkpoint(path: str | Path, *, trust: bool = False) -> object:
    """torch.load a file on the CPU; arbitrary unpickling only when `trust` is set."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint is empty (0 bytes): {path}")
    with open(path, "rb") as fh:
        head = fh.read(len(ZIP_MAGIC))
    if head != ZIP_MAGIC and head[:1] != bytes([PICKLE_PROTO]):
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint: it is neither the zip archive torch.save "
                              f"writes nor a pickle (it starts with {head!r})")
    try:
        return torch.load(path, map_location="cpu", weights_only=not trust)
    except pickle.UnpicklingError as exc:
        raise _refusal(path, str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - torch.load raises many types on corrupt input
        raise CheckpointError(
            f"{path} is not a readable PyTorch checkpoint, or is truncated "
            f"({type(exc).__name__}: {_first_line(str(exc))})"
        ) from None


def _refusal(path: Path, text: str) -> CheckpointError:
    """The weights-only unpickler's refusal in our words (torch's own text advises the unsafe load)."""
    refused = REFUSED_GLOBAL.search(text)
    if refused and BLOCKED_MODULE.search(text):
        return CheckpointError(f"{path} is refused: loading it would call {refused.group(1)}, which can run "
                               "arbitrary code; this is not a weights file, do not load it")
    if refused:
        return CheckpointError(f"{path} contains a pickled Python object ({refused.group(1)}) that weights-only "
                               "loading refuses; if the file is intact and you trust it, pass --trust-checkpoint")
    detail = UNPICKLER_DETAIL.search(text)
    return CheckpointError(f"{path} is not a readable PyTorch checkpoint "
                           f"({_first_line(detail.group(1)) if detail else 'corrupt pickle data'})")


def _first_line(text: str, limit: int = 120) -> str:
    line = text.strip().splitlines()[0] if text.strip() else "no detail"
    return line if len(line) <= limit else line[: limit - 3] + "..."


def extract_state_dict(obj: object, source: str) -> dict[str, "torch.Tensor"]:
    """Unwrap a training checkpoint, strip `module.`, cast floating tensors to float32."""
    import torch

    if isinstance(obj, dict):
        for key in WRAPPER_KEYS:
            if isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj:
        raise CheckpointError(f"{source} holds no state_dict (found {type(obj).__name__})")
    tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointError(f"{source} holds no tensors (keys: {', '.join(map(str, list(obj)[:5]))})")
    state = {}
    for key, value in tensors.items():
        key = key[len(MODULE_PREFIX):] if key.startswith(MODULE_PREFIX) else key
        state[key] = value.float() if value.is_floating_point() else value
    return state


@dataclass
class Mismatch:
    """Key and shape differences between a model and a state_dict."""

    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    shapes: list[tuple[str, tuple, tuple]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.missing or self.unexpected or self.shapes)

    def describe(self, max_shapes: int = 5) -> str:
        parts = []
        if self.missing:
            parts.append(f"missing {len(self.missing)}: {group_keys(self.missing)}")
        if self.unexpected:
            parts.append(f"unexpected {len(self.unexpected)}: {group_keys(self.unexpected)}")
        if self.shapes:
            shown = "; ".join(
                f"{k} expects {list(e)} got {list(g)}" for k, e, g in self.shapes[:max_shapes]
            )
            more = f" (+{len(self.shapes) - max_shapes} more)" if len(self.shapes) > max_shapes else ""
            parts.append(f"shape differs for {len(self.shapes)}: {shown}{more}")
        return " | ".join(parts)


def group_keys(keys: list[str], depth: int = 2, limit: int = MAX_GROUPS) -> str:
    """Summarise key names by their first `depth` components: 'mbox.* (12), model.5.* (65)'.

    A component that repeats its predecessor (feature_extractor.feature_extractor) does not count
    toward the depth, so wrapper modules do not hide which layer is meant. At most `limit` groups
    are named, so a checkpoint of another network does not print a wall of names.
    """
    groups = sorted(Counter(_group_of(k, depth) for k in keys).items())
    more = f" and {len(groups) - limit} more groups" if len(groups) > limit else ""
    return ", ".join(f"{g} ({n})" for g, n in groups[:limit]) + more


def _group_of(key: str, depth: int) -> str:
    parts, taken, counted = key.split("."), [], 0
    for i, part in enumerate(parts):
        if counted == depth:
            break
        taken.append(part)
        counted += i == 0 or part != parts[i - 1]
    return ".".join(taken) + (".*" if len(taken) < len(parts) else "")


def compare(model_state: dict, state: dict, *, optional_suffixes: tuple[str, ...] = ()) -> Mismatch:
    """Compare a state_dict against the model's own; keys ending in `optional_suffixes` may be absent."""
    result = Mismatch()
    for key, expected in model_state.items():
        if key not in state:
            if not key.endswith(optional_suffixes):
                result.missing.append(key)
        elif tuple(state[key].shape) != tuple(expected.shape):
            result.shapes.append((key, tuple(expected.shape), tuple(state[key].shape)))
    result.unexpected = [k for k in state if k not in model_state]
    return result


def randomize(model: "torch.nn.Module", seed: int = DEFAULT_SEED) -> None:
    """Seeded random weights, with non-trivial BatchNorm statistics so BN folding is exercised.

    Convolutions and linear layers get He-scaled normal weights; BatchNorm2d and frozen batch norms
    (statistics as buffers) get random affine parameters and statistics.
    """
    import torch

    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Conv2d):
                fan_in = module.in_channels * module.kernel_size[0] * module.kernel_size[1] // module.groups
                module.weight.copy_(torch.randn(module.weight.shape, generator=gen) * (1.0 / fan_in) ** 0.5)
                if module.bias is not None:
                    module.bias.copy_(torch.randn(module.bias.shape, generator=gen) * 0.1)
            elif isinstance(module, torch.nn.Linear):
                module.weight.copy_(torch.randn(module.weight.shape, generator=gen) * (1.0 / module.in_features) ** 0.5)
                if module.bias is not None:
                    module.bias.copy_(torch.randn(module.bias.shape, generator=gen) * 0.1)
            elif isinstance(module, torch.nn.BatchNorm2d) or _is_frozen_batch_norm(module):
                c = module.weight.shape[0]
                module.weight.copy_(0.5 + 0.5 * torch.rand(c, generator=gen))
                module.bias.copy_(0.1 * torch.randn(c, generator=gen))
                module.running_mean.copy_(0.1 * torch.randn(c, generator=gen))
                module.running_var.copy_(0.5 + torch.rand(c, generator=gen))


def _is_frozen_batch_norm(module: "torch.nn.Module") -> bool:
    """A FrozenBatchNorm2d (maskrcnn-benchmark style): affine and statistics all buffers, no parameters."""
    buffers = dict(module.named_buffers(recurse=False))
    return {"weight", "bias", "running_mean", "running_var"} <= set(buffers) \
        and next(module.parameters(recurse=False), None) is None


@dataclass
class WeightsSource:
    """Where a model's weights came from; recorded in every artefact that depends on them."""

    checkpoint: str | None = None
    checkpoint_sha256: str | None = None
    backbone: str | None = None
    backbone_sha256: str | None = None
    random_seed: int | None = None
    demo: bool = False  # the family's demo_weights adjusted the random weights (ModelSpec.demo_weights)

    @property
    def is_random(self) -> bool:
        return self.checkpoint is None

    def label(self) -> str:
        if self.is_random:
            calibrated = ", calibrated for varied detections" if self.demo else ""
            base = f"seeded random weights (seed {self.random_seed}){calibrated}; accuracy figures are meaningless"
            return base if self.backbone is None else f"{base}; backbone from {self.backbone}"
        return f"checkpoint {self.checkpoint}"

    def as_dict(self) -> dict:
        return dict(self.__dict__, is_random=self.is_random)


def load_backbone(model: "torch.nn.Module", spec: "ModelSpec", path: str | Path, *, trust: bool = False) -> int:
    """Initialise exactly the backbone tensors from a torchvision-layout file; returns their count."""
    if spec.backbone_to_native is None:
        raise _no_backbone(spec)
    state = spec.backbone_to_native(extract_state_dict(read_checkpoint(path, trust=trust), str(path)))
    model_state = model.state_dict()
    modules = {_module_of(k) for k in state}
    backbone_keys = {k: v for k, v in model_state.items() if _module_of(k) in modules}
    mismatch = compare(backbone_keys, state, optional_suffixes=("num_batches_tracked",))
    if mismatch:
        raise CheckpointError(f"--backbone {path} does not fit {spec.name}: {mismatch.describe()}")
    model.load_state_dict(state, strict=False)
    return len(state)


def _no_backbone(spec: "ModelSpec") -> CheckpointError:
    return CheckpointError(f"model '{spec.name}' takes no separate --backbone file")


def _module_of(key: str) -> str:
    """Top-level module of a key ('model.3' for 'model.3.0.conv1.weight')."""
    return ".".join(key.split(".")[:2])


def load_weights(
    model: "torch.nn.Module",
    spec: "ModelSpec",
    checkpoint: str | Path | None = None,
    *,
    backbone: str | Path | None = None,
    trust: bool = False,
    strict: bool = True,
    seed: int = DEFAULT_SEED,
) -> WeightsSource:
    """Fill `model` with weights: seeded random, then the backbone file, then the checkpoint. Without a
    checkpoint the family's demo_weights (if any) adjust the random weights so every stage has work."""
    source = WeightsSource()
    randomize(model, seed)
    if backbone is not None:
        count = load_backbone(model, spec, backbone, trust=trust)
        source.backbone, source.backbone_sha256 = str(backbone), sha256_of(backbone)
        log.info("backbone: %d tensors from %s", count, backbone)
    if checkpoint is None:
        source.random_seed = seed
        if spec.demo_weights is not None:
            spec.demo_weights(model, seed)
            source.demo = True
        log.warning("no checkpoint given: using %s", source.label())
        return source
    load_checkpoint(model, checkpoint, spec.to_native_layout, spec.name, trust=trust, strict=strict)
    source.checkpoint, source.checkpoint_sha256 = str(checkpoint), sha256_of(checkpoint)
    return source


def load_checkpoint(model: "torch.nn.Module", checkpoint: str | Path, to_native_layout: Callable[[dict], dict],
                    name: str, *, trust: bool = False, strict: bool = True) -> int:
    """Read `checkpoint` safely, map it with `to_native_layout` and load it into `model` (model `name`).

    Returns the number of tensors loaded. A file that does not fit but fits another registered
    model exactly is named as that model's checkpoint.
    """
    raw = extract_state_dict(read_checkpoint(checkpoint, trust=trust), str(checkpoint))
    try:
        state = to_native_layout(raw)
    except CheckpointError:
        _refuse_other_family(raw, name, checkpoint)
        raise
    mismatch = compare(model.state_dict(), state)
    if mismatch and (strict or mismatch.shapes):
        _refuse_other_family(raw, name, checkpoint)
        raise CheckpointError(f"{checkpoint} does not fit {name}: {mismatch.describe()}")
    if mismatch:
        log.warning("non-strict load of %s: %s", checkpoint, mismatch.describe())
    model.load_state_dict(state, strict=False)
    log.info("loaded %d tensors from %s", len(state), checkpoint)
    return len(state)


def fitting_family(state: dict, exclude: str = "") -> str | None:
    """The registered model (other than `exclude`) whose network this state_dict fits exactly, if any.

    Networks are built on the meta device (shapes only, no memory), so this is cheap enough for
    the error path.
    """
    import torch

    from ssdconvert.zoo import all_specs

    for other in all_specs():
        if other.name == exclude:
            continue
        try:
            native = other.to_native_layout(state)
        except CheckpointError:
            continue
        with torch.device("meta"):
            expected = other.build().state_dict()
        if not compare(expected, native, optional_suffixes=("num_batches_tracked",)):
            return other.name
    return None


def _refuse_other_family(state: dict, name: str, checkpoint) -> None:
    other = fitting_family(state, exclude=name)
    if other:
        raise CheckpointError(f"{checkpoint} is a checkpoint of {other} (every tensor fits it), not of {name}: "
                              f"pass --model {other}")


def build_model(spec: "ModelSpec", checkpoint=None, *, backbone=None, trust=False, strict=True, seed=DEFAULT_SEED):
    """Build the spec's network in eval mode with its weights; returns (model, WeightsSource). A family whose
    source is an ONNX file gives its checked source instead (ModelSpec.load_source)."""
    if spec.load_source is not None:
        if backbone is not None:
            raise _no_backbone(spec)
        return spec.load_source(spec, checkpoint)
    model = spec.build()
    source = load_weights(model, spec, checkpoint, backbone=backbone, trust=trust, strict=strict, seed=seed)
    return model.eval(), source
