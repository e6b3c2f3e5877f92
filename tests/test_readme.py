"""The README and docs/ cannot drift from the CLI (in the spirit of Polygraphy's test_examples).

On every page (README.md and docs/**/*.md), every `ssdconvert` command line in a fenced console or
bash block must name a real command and real options, and every `make` target must exist; every
subcommand appears on some page; the README's quick tour runs for real, in order, in a fresh directory.
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
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^[ \t]*```(\w*)\n(.*?)^[ \t]*```", re.S | re.M)  # also fences indented in lists


def page_id(page: Path) -> str:
    return page.relative_to(ROOT).as_posix()


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


def page_commands(page: Path) -> list[str]:
    return [c for lang, body in FENCE.findall(page.read_text()) for c in command_lines(lang, body)]


def section_block(title: str) -> tuple[str, str]:
    """(language, body) of the one fenced block of the README section `## <title>`."""
    section = README.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]
    (lang, body), = FENCE.findall(section)
    return lang, body


def quick_tour() -> list[str]:
    return command_lines(*section_block("Quick tour on synthetic data"))


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


def command_problem(line: str) -> str | None:
    """Why an `ssdconvert ...` line would not parse, or None."""
    words = shlex.split(line)
    command = cli.get_command(None, words[1])
    if command is None:
        return f"unknown command `{words[1]}`"
    unknown = unknown_options(command, words[2:])
    return f"options that `ssdconvert {words[1]}` lacks: {unknown}" if unknown else None


def test_pages_cover_every_subcommand():
    used = {shlex.split(c)[1] for page in PAGES for c in page_commands(page) if c.startswith("ssdconvert ")}
    assert set(cli.list_commands(None)) - used == set()


def test_every_docs_page_has_command_blocks_checked():
    """The pages are found: README plus every docs page (a moved docs/ folder would check nothing)."""
    assert len(PAGES) > 10 and sum(bool(page_commands(p)) for p in PAGES) > 10


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_command_lines_use_real_commands_and_options(page):
    problems = [f"{line}\n  -> {problem}" for line in page_commands(page) if line.startswith("ssdconvert ")
                if (problem := command_problem(line))]
    assert not problems, f"{page_id(page)}:\n" + "\n".join(problems)


def test_command_check_can_fail():
    assert command_problem("ssdconvert export --bs 4") is None
    assert "--no-such" in command_problem("ssdconvert export --bs 4 --no-such x")
    assert "unknown command" in command_problem("ssdconvert exprot --bs 4")


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_make_targets_exist(page):
    targets = set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.M))
    missing = [line for line in page_commands(page) if line.startswith("make ") and shlex.split(line)[1] not in targets]
    assert not missing, f"{page_id(page)}: unknown make targets in {missing}"


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


MAP_LINE = re.compile(r"^mAP \(AP@\[\.5:\.95\]\): (\d\.\d{4})$", re.M)


def test_real_data_tour_runs_in_order_and_prints_the_readme_map(tmp_path, monkeypatch):
    """The real-COCO tour, from a checkout's layout (its `ssdconvert/realdata/` paths): the mAP its eval
    prints is real (non-zero) and is the figure the README shows."""
    (tmp_path / "ssdconvert").mkdir()
    (tmp_path / "ssdconvert" / "realdata").symlink_to(ROOT / "ssdconvert" / "realdata", target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    lang, body = section_block("Quick tour on real COCO images")
    shown = MAP_LINE.findall(body)
    assert len(shown) == 1 and float(shown[0]) > 0, "the README must show one non-zero mAP line"
    commands = command_lines(lang, body)
    assert [shlex.split(c)[1] for c in commands] == ["preprocess", "preprocess", "export", "infer", "eval"]
    runner = CliRunner()
    for line in commands:
        result = runner.invoke(cli, shlex.split(line)[1:])
        assert result.exit_code == 0, f"{line}\n{result.output}"
    printed = MAP_LINE.findall(result.output)
    assert printed == shown, f"eval printed {printed}, the README shows {shown}"
    assert (tmp_path / "build" / "st_calib" / "manifest.json").is_file()
