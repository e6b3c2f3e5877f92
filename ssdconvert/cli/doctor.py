"""`ssdconvert doctor`: one table of what this machine can do. Always exits 0."""

from __future__ import annotations

import json

import click


@click.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON (for machines).")
def doctor(as_json: bool) -> None:
    """Show which vendor tools, environments and runtimes this machine has.

    ATC / ais_bench / MagicMind (mm_build, mm_run) / ovc found or missing with version and path,
    the CANN and Neuware environment variables, ONNX Runtime providers, OpenVINO devices and
    library versions. Never fails: missing pieces are rows, not errors.

    \b
    Examples:
      ssdconvert doctor
      ssdconvert doctor --json | python3 -m json.tool
    """
    from ssdconvert.cli.output import format_table
    from ssdconvert.doctor import capabilities, collect

    checks = collect()
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
