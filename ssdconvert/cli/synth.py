"""`ssdconvert synth`: a deterministic mini COCO dataset."""

from __future__ import annotations

import click


@click.command("synth")
@click.option("--out", type=click.Path(file_okay=False), default="data/mini-coco", show_default=True,
              help="Dataset root to create (val2017/ and annotations/instances_val2017.json).")
@click.option("--images", default=32, show_default=True, type=click.IntRange(min=1), help="Number of images.")
@click.option("--seed", default=0, show_default=True, help="Same seed, same bytes.")
@click.option("--overwrite", is_flag=True, help="Replace an existing non-empty --out.")
def synth(out, images, seed, overwrite):
    """Generate a deterministic synthetic COCO-format dataset (for demos and tests).

    \b
    Example:
      ssdconvert synth --out data/mini-coco --images 32
    """
    from ssdconvert.synth import generate

    ds = generate(out, images=images, seed=seed, overwrite=overwrite)
    click.echo(f"wrote {ds.images} images ({ds.annotated_images} with annotations, {ds.annotations} boxes) "
               f"to {ds.image_dir}")
    click.echo(f"annotations: {ds.annotation_file}")


COMMANDS = [synth]
