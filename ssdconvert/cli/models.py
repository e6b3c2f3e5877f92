"""`ssdconvert models`: the registered detectors and their I/O contracts."""

from __future__ import annotations

import json

import click


@click.command("models")
@click.option("--json", "as_json", is_flag=True, help="Print the full contracts as JSON.")
def models(as_json: bool) -> None:
    """List the registered detectors with their input/output contract, anchors and NMS policies."""
    from ssdconvert.zoo import all_specs, get_spec

    described = [spec.describe() for spec in all_specs()]
    if as_json:
        click.echo(json.dumps(described, indent=2))
        return
    for d in described:
        i = d["input"]
        click.echo(f"{d['name']}: {d['description']}")
        click.echo(f"  input   {i['name']} {i['dtype']} {i['shape']} {i['layout']} {i['channel_order']}; "
                   f"decode {i['decoder']}, resize {i['resize']}")
        click.echo(f"          (x * {i['scale']:.6g} - mean) / std, mean={i['mean']} std={i['std']}")
        for extra in d.get("extra_inputs", []):
            click.echo(f"  input   {extra['name']} {extra['dtype']} {extra['shape']} (written per image by preprocess)")
        for o in d["outputs"]:
            click.echo(f"  output  {o['name']} {o['dtype']} {o['shape']}")
        for line in get_spec(d["name"]).head.summary():
            click.echo(f"  {line}")
        c = d["head"]["classes"]
        click.echo(f"  classes {c['count']} (background index {c['background_index']}); evaluates "
                   f"{'every image' if d['head']['evaluated_images'] == 'all' else 'images with annotations'}; "
                   f"{d['gflops_per_image']} GFLOPs/image")
        if d["reference_map"]:
            click.echo(f"  reference accuracy: {d['reference_map']}")
        for note in d["notes"]:
            click.echo(f"  note: {note}")


COMMANDS = [models]
