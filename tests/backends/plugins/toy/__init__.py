"""A toy backend that lives only in this test folder: the proof that a backend is its folder plus one
registry entry (`plugins.toy` in ssdconvert.backends.REGISTERED).

It "compiles" an ONNX into a `.toy` model for one of two made-up target architectures (its own option,
`--toy-arch`, stored in the model's metadata), runs it on ONNX Runtime behind its own runner, which refuses a
model built for another architecture, builds one model per batch size for `bench`, and makes its INT8 models
itself: every weight tensor rounded to a symmetric per-tensor int8 grid (scale = max |w| / 127), the
calibration samples' input range recorded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ssdconvert.backends.base import Backend, BackendOptions, RunOptions, RunnerError

ARCHS = ("toy-a", "toy-b")
META_KEY = "toy_arch"


@dataclass(frozen=True)
class ToyOptions(BackendOptions):
    arch: str = "toy-a"  # the target architecture its models are built for and its runner runs


class ToyBackend(Backend):
    name = "toy"
    label = "Toy"
    Options = ToyOptions
    suffixes = (".toy",)
    builds_per_batch = True  # bench: one model per batch size, like the device backends
    precisions = ("fp32", "int8")
    quantized_suffix = ".toy"

    options: ToyOptions

    def _arch(self) -> str:
        if self.options.arch not in ARCHS:
            raise RunnerError(f"--toy-arch {self.options.arch!r} is not one of {', '.join(ARCHS)}")
        return self.options.arch

    def build(self, onnx: Path, out_dir: Path, *, batch: int, precision: str | None,
              calib: Path | None) -> list[Path]:
        """`<stem>_<arch>[_int8].toy` in `out_dir` (int8: calibrated on `calib`, no gate here)."""
        out = out_dir / f"{onnx.stem}_{self._arch()}{'_int8' if precision == 'int8' else ''}.toy"
        if precision != "int8":
            return [write_toy(onnx, out, self._arch())]
        from ssdconvert.quantize import quantize_model

        return quantize_model(onnx, calib, out, backend=self, gate=False).artefacts

    def check_bench(self, model: Path, ctx) -> None:
        self._arch()

    def build_for_batch(self, onnx: Path, batch: int, ctx) -> tuple[Path, dict]:
        built = self.build(onnx, ctx.workdir / f"bs{batch}", batch=batch, precision=ctx.precision, calib=ctx.calib)
        return built[0], {"build_seconds": 0.0, "build_command": ["toy-build", f"--arch={self._arch()}", f"--bs={batch}"]}

    def runner_for(self, model: Path, options: RunOptions):
        from .runner import ToyRunner

        return ToyRunner(model, self._arch())

    def runtime_label(self, versions) -> str:
        return f"Toy {self.options.arch}"

    def checks(self) -> list:
        from ssdconvert.doctor import Check

        return [Check("runtimes", "toy runtime", "ok", "1.0", f"ONNX Runtime behind a toy ({', '.join(ARCHS)})",
                      capability="run .toy")]

    def missing(self) -> str | None:
        return None

    def quantize(self, source: Path, samples, output: Path, exclude: Sequence[str], say) -> dict:
        from .int8 import quantize

        return quantize(source, samples, output, exclude, self._arch())

    def commands(self) -> list:
        from .commands import toy

        return [toy]

    def cli_options(self, command: str) -> list:
        import click

        if command not in ("run", "bench", "infer"):
            return []
        return [click.Option(["--toy-arch", "arch"], type=click.Choice(ARCHS), default="toy-a", show_default=True,
                             help="The toy architecture its models are built for.")]


def write_toy(onnx: Path, out: Path, arch: str, model=None) -> Path:
    """The ONNX (or `model`, an onnx.ModelProto) as a .toy model for `arch`."""
    import onnx as onnx_lib

    model = model if model is not None else onnx_lib.load(str(onnx))
    del model.metadata_props[:]
    model.metadata_props.add(key=META_KEY, value=arch)
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx_lib.save(model, str(out))
    return out


BACKEND = ToyBackend()
