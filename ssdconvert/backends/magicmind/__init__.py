"""Cambricon MLUs: ssdconvert's MagicMind build script compiles the ONNX; the MagicMind runtime runs it.

A MagicMind model file has no extension (it is written exactly at --magicmind_model), so `auto`
recognises it by the build record `<model>.json` that `ssdconvert cnnl` writes beside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ssdconvert.backends.base import Backend, BackendOptions, ClusterResource, RunOptions


@dataclass(frozen=True)
class MagicMindOptions(BackendOptions):
    mlu_arch: str = "mtp_372"  # the MLU architecture its builds target (MLU370 = mtp_372)


class MagicMindBackend(Backend):
    name = "magicmind"
    label = "MagicMind (Cambricon MLU)"
    Options = MagicMindOptions
    build_tag = "mm"
    built_by = ("magicmind",)
    device_help = "--device is the MLU id."
    # --cluster: a custom resource (`ray start --resources='{"MLU": 8}'`): Ray counts it but assigns no ids, so a
    # cell claims a free slot of its node; the node's MLU_VISIBLE_DEVICES maps slots to MLUs
    cluster_resource = ClusterResource("MLU", visible_env="MLU_VISIBLE_DEVICES")
    builds_per_batch = True  # bench: one static model per batch size (or one shape-mutable model)
    precisions = ("fp32", "fp16", "int8")  # force_float32, force_float16, qint8_mixed_float16
    int8_note = ("ssdconvert's MagicMind build script calibrates itself: `ssdconvert cnnl --precision "
                 "qint8_mixed_float16 --calib ssd_bin` (calibration data from the same bins)")

    options: MagicMindOptions

    def build(self, onnx: Path, out_dir: Path, *, batch: int, precision: str | None,
              calib: Path | None) -> list[Path]:
        """One static model at `batch` (force_float32 by default; int8 = qint8_mixed_float16 calibrated on `calib`)."""
        from ssdconvert.backends.magicmind.compile import build_static

        return build_static(onnx, out_dir, batch, precision, calib, self.options.mlu_arch, self.options.tool).artefacts

    def build_for_batch(self, onnx: Path, batch: int, ctx) -> tuple[Path, dict]:
        """One static model per batch size (SSD supports only static shapes in MagicMind)."""
        from ssdconvert.backends.magicmind.compile import build_static, precision_mode

        ctx.say(f"batch {batch}: MagicMind build ({precision_mode(ctx.precision)}), static batch {batch} ...")
        built = build_static(onnx, ctx.workdir, batch, ctx.precision, ctx.calib, self.options.mlu_arch,
                             self.options.tool)
        return built.primary, {"build_seconds": built.seconds, "build_command": [str(c) for c in built.command]}

    def runner_for(self, model: Path, options: RunOptions):
        from ssdconvert.backends.magicmind.runner import make_runner

        return make_runner(model, options)

    def time_batch(self, artefact: Path, batch: int, ctx):
        from ssdconvert.backends.magicmind.runner import time_batch

        return time_batch(artefact, batch, ctx, self.options.tool)

    def runtime_label(self, versions) -> str:
        from ssdconvert.backends.magicmind.runner import runtime_label

        return runtime_label(versions)

    def checks(self) -> list:
        from ssdconvert.backends.magicmind import doctor

        return doctor.checks()

    def missing(self) -> str | None:
        from ssdconvert.backends.magicmind import doctor

        return doctor.missing(self.options.tool)

    def commands(self) -> list:
        from ssdconvert.backends.magicmind.commands import cnnl, magicmind

        return [cnnl, magicmind]

    def cli_options(self, command: str) -> list:
        from ssdconvert.backends.magicmind.commands import generic_options

        return generic_options(command)


BACKEND = MagicMindBackend()
