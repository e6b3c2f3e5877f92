"""The compile commands (`atc`, `cnnl`/`magicmind`, `openvino`, ...): each backend declares its own
(Backend.commands, in `backends/<name>/commands.py`); this module gathers them from the registry."""

from __future__ import annotations

import click


def backend_commands() -> dict[str, click.Command]:
    """Command name -> command, for every registered backend's own commands."""
    from ssdconvert.backends import all_backends
    from ssdconvert.cli import COMMAND_MODULES

    commands: dict[str, click.Command] = {}
    for backend in all_backends():
        for command in backend.commands():
            if command.name in commands or command.name in COMMAND_MODULES:
                raise TypeError(f"backend {backend.name} declares the command `{command.name}`, which exists already")
            commands[command.name] = command
    return commands
