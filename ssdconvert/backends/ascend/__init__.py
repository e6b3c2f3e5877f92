"""Huawei Ascend NPUs: ATC compiles the ONNX to an offline model (.om); ais_bench runs it.

One name for the whole backend: `ascend` (the device family). `atc` is only its compiler and
`ais_bench` only its runtime; both are still accepted as backend names, with a deprecation note.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ssdconvert.backends.base import Backend, BackendOptions, ClusterResource, RunOptions
from ssdconvert.backends.compiling import CompilerError

SOC_NEEDED = "{what} needs --soc (the chip, e.g. Ascend310P3; see `npu-smi info`)"


@dataclass(frozen=True)
class AscendOptions(BackendOptions):
    soc: str | None = None  # the chip ATC builds for, as `npu-smi info` names it (Ascend310P3)
    dym_batch: bool = False  # the .om has batch gears (atc --dynamic_batch_size): run each batch as a gear


class AscendBackend(Backend):
    name = "ascend"
    label = "Ascend (ATC + ais_bench)"
    Options = AscendOptions
    build_tag = "atc"
    suffixes = (".om",)
    built_by = ("atc",)
    aliases = ("atc", "ais_bench")
    device_list = True  # ais_bench --device 0,1,...: one process per NPU, the inputs split between them
    device_help = "--device is the NPU id, or a list (0,1,2,3) to split the inputs across NPUs."
    # --cluster: Ray's own accelerator resource NPU; Ray assigns the ids and sets the mask (ray==2.60.0,
    # ray/_private/accelerators/npu.py: ids from acl.rt.get_device_count() or /dev/davinci*)
    cluster_resource = ClusterResource("NPU", visible_env="ASCEND_RT_VISIBLE_DEVICES", ray_assigns_ids=True)
    builds_per_batch = True  # bench: ATC builds one static .om per batch size, like the published tables
    precisions = ("fp16", "fp32", "bf16")  # ATC --precision_mode force_fp16 (its default), force_fp32, bf16 mix
    default_precision = "fp16"
    int8_note = ("Ascend INT8 is calibrated with AMCT on the CANN host (`amct_onnx calibration --model m.onnx "
                 "--save_path out/m --input_shape image:1,3,300,300 --data_dir ssd_bin --data_types float32`), and "
                 "the resulting out/m_deploy_model.onnx is compiled by `ssdconvert atc` (docs/commands/quantize.md)")

    options: AscendOptions

    def _soc(self, what: str) -> str:
        if not self.options.soc:
            raise CompilerError(SOC_NEEDED.format(what=what))
        return self.options.soc

    def precision_refusal(self, precision: str | None) -> str | None:
        """Also refuse bf16 for a chip without bfloat16 (310P, the main target, has none)."""
        refusal = super().precision_refusal(precision)
        if refusal or precision is None or not self.options.soc:
            return refusal
        from ssdconvert.backends.ascend.compile import MODES, bf16_refusal

        why = bf16_refusal(self.options.soc, [MODES.get(precision, precision)])
        return f"{self.label} cannot build {precision} for {self.options.soc}: {why}" if why else None

    def build(self, onnx: Path, out_dir: Path, *, batch: int, precision: str | None,
              calib: Path | None) -> list[Path]:
        """One static .om at `batch` (`calib` is not used: INT8 om files come from AMCT)."""
        from ssdconvert.backends.ascend.compile import build_static

        soc = self._soc("building an .om")
        return build_static(onnx, out_dir, batch, precision, soc, self.options.tool).artefacts

    def check_bench(self, model: Path, ctx) -> None:
        if model.suffix.lower() == ".onnx":
            self._soc("building .om files")

    def build_for_batch(self, onnx: Path, batch: int, ctx) -> tuple[Path, dict]:
        """One static .om per batch size, like the published tables (recorded in the row)."""
        from ssdconvert.backends.ascend.compile import build_static

        soc = self._soc("building .om files")
        ctx.say(f"batch {batch}: atc --soc_version={soc} ...")
        built = build_static(onnx, ctx.workdir, batch, ctx.precision, soc, self.options.tool)
        return built.primary, {"build_seconds": built.seconds, "build_command": [str(c) for c in built.command]}

    def runner_for(self, model: Path, options: RunOptions):
        from ssdconvert.backends.ascend.runner import make_runner

        return make_runner(model, options, self.options.dym_batch)

    def folder_tool(self, job):
        from ssdconvert.backends.ascend.runner import folder_tool

        return folder_tool(job, self.options.dym_batch)

    def time_batch(self, artefact: Path, batch: int, ctx):
        from ssdconvert.backends.ascend.runner import time_batch

        return time_batch(artefact, batch, ctx, self.options.dym_batch)

    def runtime_label(self, versions) -> str:
        return f"ais_bench {self.options.soc or ''}".strip()

    def checks(self) -> list:
        from ssdconvert.backends.ascend import doctor

        return doctor.checks()

    def missing(self) -> str | None:
        from ssdconvert.backends.ascend import doctor

        return doctor.missing(self.options.tool)

    def commands(self) -> list:
        from ssdconvert.backends.ascend.commands import atc

        return [atc]

    def cli_options(self, command: str) -> list:
        from ssdconvert.backends.ascend.commands import generic_options

        return generic_options(command)


BACKEND = AscendBackend()
