"""The README cannot drift from the CLI (in the spirit of Polygraphy's test_examples).

Every `ssdconvert` command line in a fenced block must name a real command and real options;
every `make` target must exist; the quick tour runs for real, in order, in a fresh directory.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from ssdconvert.cli import cli

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
FENCE = re.compile(r"^[ \t]*```(\w*)\n(.*?)^[ \t]*```", re.S | re.M)  # also fences indented in lists


def command_lines(language: str, body: str) -> list[str]:
    """Commands of a console block (`$ ` lines) or a bash block (continuations joined, comments cut)."""
    body = "\n".join(line.strip() for line in body.splitlines())
    if language == "console":
        return [line[2:] for line in body.splitlines() if line.startswith("$ ")]
    if language == "bash":
        joined = body.replace("\\\n", " ")
        return [line.split(" #")[0].strip() for line in joined.splitlines()
                if line.strip().startswith(("ssdconvert ", "make "))]
    return []


def readme_commands() -> list[str]:
    return [c for lang, body in FENCE.findall(README) for c in command_lines(lang, body)]


def quick_tour() -> list[str]:
    section = README.split("## Quick tour", 1)[1].split("\n## ", 1)[0]
    (lang, body), = FENCE.findall(section)
    return command_lines(lang, body)


def unknown_options(command: click.Command, words: list[str]) -> list[str]:
    """Option words the command does not define (values of known options are skipped)."""
    params = {o: p for p in command.params for o in (*p.opts, *p.secondary_opts)}
    unknown, skip = [], False
    for word in words:
        if skip:
            skip = False
            continue
        if not word.startswith("-") or word in ("-h", "--help"):
            continue
        name = word.split("=")[0]
        param = params.get(name)
        if param is None:
            unknown.append(name)
        elif "=" not in word and isinstance(param, click.Option) and not (param.is_flag or param.count):
            skip = True
    return unknown


def test_readme_has_commands_for_every_subcommand():
    used = {shlex.split(c)[1] for c in readme_commands() if c.startswith("ssdconvert ")}
    assert set(cli.list_commands(None)) - used == set()


@pytest.mark.parametrize("line", [c for c in readme_commands() if c.startswith("ssdconvert ")])
def test_readme_command_uses_real_options(line):
    words = shlex.split(line)
    command = cli.get_command(None, words[1])
    assert command is not None, f"README uses unknown command: {line}"
    unknown = unknown_options(command, words[2:])
    assert not unknown, f"README line uses options that `ssdconvert {words[1]}` lacks: {unknown}\n{line}"


@pytest.mark.parametrize("line", [c for c in readme_commands() if c.startswith("make ")])
def test_readme_make_targets_exist(line):
    targets = set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.M))
    assert shlex.split(line)[1] in targets, line


def test_quick_tour_runs_in_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    commands = quick_tour()
    assert len(commands) >= 10
    for line in commands:
        result = runner.invoke(cli, shlex.split(line)[1:])
        assert result.exit_code == 0, f"{line}\n{result.output}"
    assert (tmp_path / "build" / "result_eval.json").is_file()
    assert (tmp_path / "build" / "bench" / "ssd_resnet34_bs4_onnxruntime.png").is_file()
