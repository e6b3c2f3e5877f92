"""`ssdconvert dequantize`: a QDQ INT8 ONNX model folded back to float."""

from __future__ import annotations

import click

from ssdconvert.dequantize import DEFAULT_SAMPLES


@click.command("dequantize")
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.option("--output", "-o", default=None, help="Float model to write [default: <model stem>_fp32.onnx].")
@click.option("--input", "inputs", default=None, metavar="DIR[,DIR...]|FILE[,FILE...]",
              help="Samples to compare the float and INT8 outputs on: a preprocessed bins folder, or folders/files "
                   "of .bin/.npy as `infer --input` takes them.")
@click.option("--samples", default=DEFAULT_SAMPLES, show_default=True, type=click.IntRange(min=1),
              help="How many samples of --input to run (evenly spread over a bins folder with a manifest, else "
                   "the first ones).")
def dequantize(model, output, inputs, samples):
    """Fold a QDQ INT8 ONNX MODEL back to float.

    Each weight DequantizeLinear(constant) becomes a float initializer (per-tensor or per-channel,
    with its zero point); activation QuantizeLinear -> DequantizeLinear pairs are removed, also
    across layout ops such as Transpose, Reshape or Concat between them. A DequantizeLinear of a
    graph input (e.g. a uint8 image the graph dequantizes itself) or of constant-derived data
    (e.g. int8 anchors) stays. Prints the node counts before and after, every node kept and why,
    and, with --input, per output the max abs diff, cosine and SNR of the INT8 model against the
    float one on ONNX Runtime. For compilers that calibrate themselves (ATC with AMCT, MagicMind,
    `ssdconvert quantize`) and to get a vendor's float network back from its INT8 release.

    \b
    Examples:
      ssdconvert dequantize ssd_int8.onnx --output ssd_fp32.onnx
      ssdconvert dequantize ssd_int8.onnx --output ssd_fp32.onnx --input build/ssd_bin --samples 16
    """
    from ssdconvert.dequantize import dequantize_model

    report = dequantize_model(model, output, inputs=inputs, samples=samples, say=lambda s: click.echo(s, err=True))
    click.echo(f"wrote {report.output} ({report.output.stat().st_size / 1e6:.1f} MB)")
    click.echo("\n".join(report.lines()))


COMMANDS = [dequantize]
