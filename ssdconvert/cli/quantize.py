"""`ssdconvert quantize`: INT8 from the FP32 ONNX, calibrated on the bins, held to the accuracy gate."""

from __future__ import annotations

import click

from ssdconvert.backends import REFERENCE
from ssdconvert.cli.options import BackendOptionsCommand, finite_float

GATE_HELP = "Accuracy gate: fail below this {what} (see docs/precision.md)."


def gate_options(func):
    """--max-map-drop, --min-cosine, --min-snr, --min-det-ap: the accuracy gate's thresholds (shared by every
    command that gates a model)."""
    from ssdconvert.agreement import Thresholds

    t = Thresholds()
    func = click.option("--max-map-drop", default=t.max_map_drop, show_default=True, type=finite_float(0),
                        help="Accuracy gate, where the images have real annotations (a manifest with an annotation "
                             "file) and the weights are not random: fail when the candidate's COCO mAP is more "
                             "than this many AP points (100 x AP) below the FP32 reference's (see "
                             "docs/precision.md).")(func)
    func = click.option("--min-det-ap", default=t.min_detection_ap, show_default=True, type=finite_float(0, 1),
                        help=GATE_HELP.format(what="detection agreement AP (candidate scored against the "
                                                   "reference's detections)"))(func)
    func = click.option("--min-snr", default=t.min_snr_db, show_default=True, type=finite_float(),
                        help=GATE_HELP.format(what="SNR in dB of any output"))(func)
    func = click.option("--min-cosine", default=t.min_cosine, show_default=True, type=finite_float(-1, 1),
                        help=GATE_HELP.format(what="cosine similarity of any output"))(func)
    return func


def thresholds(min_cosine: float, min_snr: float, min_det_ap: float, max_map_drop: float):
    from ssdconvert.agreement import Thresholds

    return Thresholds(min_cosine=min_cosine, min_snr_db=min_snr, min_detection_ap=min_det_ap,
                      max_map_drop=max_map_drop)


def _quantizers() -> list[str]:
    from ssdconvert.backends import quantizers

    return quantizers()


def _quantizer(ctx, param, value: str) -> str:
    """A backend whose INT8 models `quantize` makes (checked against the registry when the command runs)."""
    if value not in _quantizers():
        raise click.BadParameter(f"{value!r} is not one of {', '.join(_quantizers())} (the backends that quantize "
                                 "here)")
    return value


@click.command("quantize", cls=BackendOptionsCommand)
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.option("--calib", required=True, metavar="DIR[,DIR...]",
              help="Preprocessed bins folder (manifest.json + <stem>.bin); comma-separated folders for a model "
                   "with several inputs, in input order.")
@click.option("--output", "-o", default=None,
              help="INT8 model to write [default: <model stem>_int8.onnx, or .xml for openvino].")
@click.option("--backend", default=REFERENCE, show_default=True, callback=_quantizer,
              metavar="|".join(_quantizers()),
              help="Whose INT8 model: a backend that quantizes here (ONNX Runtime QDQ, OpenVINO IR through NNCF).")
@click.option("--calib-images", default=300, show_default=True, type=click.IntRange(min=1),
              help="Calibration samples, evenly spread over the folder's images (deterministic).")
@click.option("--gate-images", default=32, show_default=True, type=click.IntRange(min=1),
              help="Samples the accuracy gate runs (others than the calibration ones where the folder has them).")
@click.option("--gate-bins", type=click.Path(exists=True, file_okay=False), default=None,
              help="Run the accuracy gate on these preprocessed bins instead of other samples of --calib. Bins "
                   "preprocessed with --val_annotation make the real COCO mAP drop the gate's first figure.")
@click.option("--exclude", multiple=True, metavar="NODE",
              help="Keep this node in float (repeatable). Default: none (measured: excluding the head convs did not "
                   "improve agreement).")
@click.option("--model", "model_name", default=None, metavar="NAME",
              help="Detector family [default: from the export record <model>.json, else the manifest].")
@click.option("--no-gate", is_flag=True, help="Skip the accuracy gate (the record then has no gate figures).")
@gate_options
def quantize(model, calib, output, backend, calib_images, gate_images, gate_bins, exclude, model_name, no_gate,
             min_cosine, min_snr, min_det_ap, max_map_drop, backend_options):
    """Make an INT8 model from the exported FP32 ONNX and check it against ONNX Runtime FP32.

    Calibrates on --calib-images samples of the bins, quantizes with the backend's own tool,
    then runs the accuracy gate: per output max abs/rel diff, SNR and cosine, and the detection
    agreement (COCO AP of the INT8 model's detections against the FP32 ones). Writes the model
    and <model>.json (settings, calibration images, gate figures). Exit code 1 when the model
    fails the gate (it is kept; the message names the worst outputs). Each backend adds its own
    options (ONNX Runtime: --calibration, --percentile, --ort-types, --per-tensor). Where the gate's
    images have real annotations (--gate-bins from `preprocess --val_annotation`) and the weights are
    trained, its first figure is the real COCO mAP drop (--max-map-drop).

    \b
    Examples:
      ssdconvert quantize build/ssd_resnet34.onnx --calib build/ssd_bin
      ssdconvert quantize ssd.onnx --calib ssd_bin --backend openvino --output int8/ssd.xml
      ssdconvert quantize ssd.onnx --calib ssd_bin --ort-types s8s8 --calib-images 100
      ssdconvert quantize st.onnx --calib calib_bin --gate-bins val_bin --calibration minmax
    """
    from ssdconvert.cpu import cpu_features
    from ssdconvert.quantize import quantize_model

    click.echo(f"CPU: {cpu_features().describe()}", err=True)
    result = quantize_model(model, calib, output, backend=backend, options=backend_options, exclude=exclude,
                            calib_images=calib_images, gate_images=gate_images, gate_bins=gate_bins,
                            thresholds=thresholds(min_cosine, min_snr, min_det_ap, max_map_drop), model_name=model_name,
                            gate=not no_gate, say=lambda s: click.echo(s, err=True))
    click.echo("\n".join(result.lines()))
    result.check_passed()


COMMANDS = [quantize]
