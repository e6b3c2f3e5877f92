"""`ssdconvert doctor`: one table of what this machine can do. Always exits 0."""

from __future__ import annotations

import json

import click

from ssdconvert.cli.options import backend_names, canonical_backend


def _backends(ctx, param, value: tuple[str, ...]) -> tuple[str, ...]:
    """Each backend once, however often (or under whichever of its names) it is given."""
    return tuple(dict.fromkeys(canonical_backend(v) for v in value))


@click.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON (for machines).")
@click.option("--backend", "names", multiple=True, callback=_backends, metavar="NAME",
              help=f"Only this backend's checks (repeatable): {', '.join(backend_names())}.")
def doctor(as_json: bool, names: tuple[str, ...]) -> None:
    """Show which vendor tools, environments and runtimes this machine has.

    Every backend's probe: ATC / ais_bench / npu-smi (ascend), the MagicMind build tool, mm_run
    and Python runtime (magicmind), ovc and OpenVINO devices (openvino), ONNX Runtime providers,
    found or missing with version and path, and the CANN and Neuware environment variables; then
    library versions. Never fails: missing pieces are rows, not errors.

    \b
    Examples:
      ssdconvert doctor
      ssdconvert doctor --backend ascend
      ssdconvert doctor --json | python3 -m json.tool
    """
    from ssdconvert.doctor import capabilities, collect
    from ssdconvert.formatting import format_table

    checks = collect(names or None)
    caps = capabilities(checks)
    if as_json:
        click.echo(json.dumps({"checks": [c.as_dict() for c in checks], "capabilities": caps}, indent=2))
        return
    rows = [(c.group, c.name, c.status, c.version or "-", c.detail) for c in checks]
    click.echo(format_table(["group", "name", "status", "version", "path / details"], rows))
    click.echo("")
    click.echo("this machine can: " + (", ".join(k for k, v in caps.items() if v) or "nothing yet"))
    missing = [k for k, v in caps.items() if not v]
    if missing:
        click.echo("it cannot:        " + ", ".join(missing))


COMMANDS = [doctor]
