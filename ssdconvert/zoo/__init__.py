"""Model zoo: detector name -> ModelSpec. One module per detector family."""

from __future__ import annotations

from ssdconvert.errors import UnknownModelError
from ssdconvert.zoo.spec import ModelSpec

_REGISTRY: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    if spec.name in _REGISTRY:
        raise ValueError(f"model '{spec.name}' registered twice")
    _REGISTRY[spec.name] = spec
    return spec


def get_spec(name: str) -> ModelSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise UnknownModelError(f"unknown model '{name}'; known models: {known}") from None


def model_names() -> list[str]:
    return sorted(_REGISTRY)


def all_specs() -> list[ModelSpec]:
    return [_REGISTRY[n] for n in model_names()]


# Families register themselves on import; their torch code is imported lazily by spec.build.
from ssdconvert.zoo import ssd_resnet34  # noqa: E402,F401
from ssdconvert.zoo import ssd_resnet50  # noqa: E402,F401
from ssdconvert.zoo import ssd_vgg16  # noqa: E402,F401
from ssdconvert.zoo import faster_rcnn  # noqa: E402,F401

__all__ = ["ModelSpec", "register", "get_spec", "model_names", "all_specs"]
