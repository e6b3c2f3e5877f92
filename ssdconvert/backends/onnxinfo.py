"""What the compilers need to know about an ONNX file: its real inputs, their dims, its opsets."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ssdconvert.backends.compiling import CompilerError
from stageio.tensor import TensorSpec  # a graph input: `shape` without the batch axis, `batch` None when dynamic


def _check_fixed(inp: TensorSpec) -> None:
    """The non-batch dims must be fixed for the device toolchains (ATC, MagicMind)."""
    if inp.dynamic:
        shown = ",".join("?" if d is None else str(d) for d in inp.dims)
        raise CompilerError(
            f"ONNX input '{inp.name}' has shape [{shown}]: only the batch axis may be dynamic, the device needs "
            "the fixed canvas; re-export with fixed height and width (--canvas HxW; an exact-mode model, "
            "--canvas exact, runs on ONNX Runtime and OpenVINO only)")


@dataclass(frozen=True)
class OnnxInfo:
    path: Path
    inputs: tuple[TensorSpec, ...]
    opsets: dict[str, int]  # domain ("" = ai.onnx) -> version
    output_dtypes: tuple[str, ...] = ()

    @property
    def output_dtype(self) -> str:
        """The element type of the graph outputs (what ATC keeps without --output_type)."""
        return "/".join(dict.fromkeys(self.output_dtypes)) or "float32"

    @property
    def opset(self) -> int | None:
        return self.opsets.get("") or self.opsets.get("ai.onnx")

    def batched_inputs(self, dynamic_tail: bool = False) -> tuple[TensorSpec, ...]:
        """Every graph input, checked to share the batch axis: all dynamic, or all fixed to the same batch
        (an image input and its side inputs such as im_info). Non-batch dims must be fixed unless
        `dynamic_tail` (a runtime that takes any image size, such as OpenVINO)."""
        if not self.inputs:
            raise CompilerError(f"{self.path} has no graph inputs")
        for inp in self.inputs if not dynamic_tail else ():
            _check_fixed(inp)
        batches = {i.batch for i in self.inputs}
        if len(batches) > 1:
            shown = ", ".join(f"{i.name} [{','.join('?' if d is None else str(d) for d in i.dims)}]"
                              for i in self.inputs)
            raise CompilerError(f"{self.path}: the graph inputs do not share one batch axis ({shown})")
        return self.inputs

    @property
    def batch(self) -> int | None:
        """The fixed batch of the inputs, or None when it is dynamic."""
        return self.batched_inputs(dynamic_tail=True)[0].batch


def load_onnx(path: str | Path, *, weights: bool = True):
    """The onnx.ModelProto of `path` (without external weights unless `weights`); a missing, truncated or
    non-ONNX file is one CompilerError, never protobuf's DecodeError."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise CompilerError(f"ONNX file not found: {path}")
    try:
        return onnx.load(str(path), load_external_data=weights)
    except Exception as exc:  # onnx raises DecodeError and friends
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CompilerError(f"cannot read {path} as ONNX (truncated, or not an ONNX file?): {text}") from None


def read_onnx(path: str | Path) -> OnnxInfo:
    """Read graph inputs (initializers excluded) and opset imports; weights are not resolved."""
    path = Path(path)
    model = load_onnx(path, weights=False)
    initializers = {init.name for init in model.graph.initializer}
    inputs = []
    for value in model.graph.input:
        if value.name in initializers:  # IR < 4 lists weights as inputs too
            continue
        dims = tuple(
            d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
            for d in value.type.tensor_type.shape.dim
        )
        inputs.append(TensorSpec.batched(value.name, dims, _np_dtype(value.type.tensor_type.elem_type)))
    opsets = {imp.domain: int(imp.version) for imp in model.opset_import}
    outputs = tuple(_np_dtype(o.type.tensor_type.elem_type) for o in model.graph.output)
    return OnnxInfo(path, tuple(inputs), opsets, outputs)


def _np_dtype(elem_type: int) -> str:
    import onnx

    return onnx.helper.tensor_dtype_to_np_dtype(elem_type).name if elem_type else "unknown"
