"""`ssdconvert run`: the whole pipeline in one work directory."""

from __future__ import annotations

import click

from ssdconvert.cli.options import model_option, weights_options
from ssdconvert.cli.output import format_table


@click.command("run")
@model_option
@weights_options
@click.option("--workdir", type=click.Path(file_okay=False), default="build/run", show_default=True,
              help="Where every stage writes its outputs.")
@click.option("--images", default=16, show_default=True, type=click.IntRange(min=1),
              help="Synthetic images to generate.")
@click.option("--bs", default=4, show_default=True, type=click.IntRange(min=1), help="Batch size to validate.")
def run(model_name, checkpoint, backbone, trust_checkpoint, seed, workdir, images, bs):
    """Run every stage on the embedded synthetic data and print a short report.

    \b
    Example:
      ssdconvert run --workdir build/demo
    """
    from ssdconvert.pipeline import run_pipeline

    report = run_pipeline(workdir, model_name=model_name, checkpoint=checkpoint, backbone=backbone,
                          trust=trust_checkpoint, images=images, bs=bs)
    click.echo(format_table(["stage", "seconds", "result"],
                            [(s.name, f"{s.seconds:.1f}", s.figure) for s in report.stages]))
    for note in report.notes:
        click.echo(note)
    click.echo(f"outputs in {report.workdir}")


COMMANDS = [run]
