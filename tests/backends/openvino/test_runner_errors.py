"""A file that is not an OpenVINO IR gets one line saying what is wrong with it, not OpenVINO's
`Exception from src/inference/src/cpp/core.cpp:84:` (a source location and nothing else)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from ssdconvert.backends.base import first_line
from ssdconvert.cli import cli


@pytest.mark.parametrize("content, weights, expected", [
    ("<net>garbage\n", True, "is not an OpenVINO IR: not well-formed XML (no element found: line 2, column 0)"),
    ('<?xml version="1.0"?><graph/>', True, "is not an OpenVINO IR: its root element is <graph>, an IR's is <net>"),
    ('<?xml version="1.0"?><net name="x"></net>', False, "has no weights file model.bin beside it (an IR is .xml + .bin)"),
])
def test_garbage_xml_is_named(tmp_path, content, weights, expected):
    (tmp_path / "model.xml").write_text(content)
    if weights:
        (tmp_path / "model.bin").write_bytes(b"\0" * 16)
    (tmp_path / "bins").mkdir()
    (tmp_path / "bins" / "000000000001.bin").write_bytes(b"\0" * 768)
    result = CliRunner().invoke(cli, ["infer", "--model", str(tmp_path / "model.xml"), "--input",
                                      str(tmp_path / "bins"), "--output", str(tmp_path / "out"), "--no-progress"])
    assert result.exit_code == 1
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("Error: ") and last.endswith(expected) and "core.cpp" not in last


def test_first_line_skips_source_locations():
    exc = RuntimeError("Exception from src/inference/src/cpp/core.cpp:84:\nException from src/inference/src/"
                       "model_reader.cpp:148:\nUnable to read the model: x.xml\n\n")
    assert first_line(exc) == "Unable to read the model: x.xml"
    assert first_line(RuntimeError("Check 'a == b' failed at src/x.cpp:219:\nStart-end tags mismatch")) == \
        "Start-end tags mismatch"
    assert first_line(RuntimeError("")) == "RuntimeError"
