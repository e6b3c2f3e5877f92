"""What a new user typed that the CLI must answer with one `Error:` line (issue 24 §3): non-finite
numbers, unwritable output folders, a manifest given for a folder, a repeated --backend."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from ssdconvert.cli import cli


def _commands():
    ctx = click.Context(cli)
    return {name: cli.get_command(ctx, name) for name in cli.list_commands(ctx)}


def test_every_float_option_refuses_nan_and_inf():
    """One shared type for every float option of every command (the backends' own commands included)."""
    from ssdconvert.backends.commands import FiniteFloat

    floats = [(name, p) for name, command in _commands().items() for p in command.params
              if isinstance(p.type, (click.types.FloatParamType, click.FloatRange))]
    assert {f"{n} {p.opts[0]}" for n, p in floats} >= {"bench --duration", "run --bench-duration", "quantize --min-snr",
                                                        "compare --min-cosine", "atc --timeout", "export --atol"}
    for name, param in floats:
        assert isinstance(param.type, FiniteFloat), f"{name} {param.opts[0]}"
        for text in ("nan", "NaN", "inf", "-inf"):
            with pytest.raises(click.BadParameter, match="is not a finite number"):
                param.type.convert(text, param, None)
        assert param.type.convert("0.5" if param.opts[0] != "--timeout" else "5", param, None) > 0


@pytest.mark.parametrize("args", [["bench", "--model", "{model}", "--duration", "nan"],
                                  ["run", "--bench-duration", "nan", "--workdir", "{tmp}"],
                                  ["quantize", "{model}", "--calib", "{tmp}", "--min-snr", "nan"]])
def test_a_nan_duration_or_threshold_is_refused_before_anything_runs(args, tmp_path):
    model = tmp_path / "m.onnx"
    model.write_bytes(b"")
    result = CliRunner().invoke(cli, [a.format(model=model, tmp=tmp_path / "w") for a in args])
    assert result.exit_code == 2, result.output
    assert "'nan' is not a finite number" in result.output.strip().splitlines()[-1]
    assert not (tmp_path / "w").exists()
