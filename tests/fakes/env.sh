# Rehearse the Ascend and Cambricon walkthroughs on a machine without their SDKs:
#
#     source .venv/bin/activate && source tests/fakes/env.sh
#
# puts the test suite's contract-faithful fakes where the real tools would be: `atc` and `mm_run`
# on PATH, and the `ais_bench` and `magicmind` Python packages on PYTHONPATH (ssdconvert's own
# MagicMind build script runs on the fake `magicmind`, with this Python). They check flags as
# strictly as the real tools are documented to, write real artefacts and compute real outputs
# (with ONNX Runtime), so every command of the walkthroughs runs end to end. The numbers are this
# CPU's, not a device's.
_ssdconvert_fakes="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")" && pwd)"
_ssdconvert_python="$(command -v python3)"
mkdir -p "$_ssdconvert_fakes/.bin"
for _tool in atc mm_run; do
    printf '#!/bin/sh\nexec "%s" "%s/%s.py" "$@"\n' "$_ssdconvert_python" "$_ssdconvert_fakes" "$_tool" \
        > "$_ssdconvert_fakes/.bin/$_tool"
    chmod +x "$_ssdconvert_fakes/.bin/$_tool"
done
export PATH="$_ssdconvert_fakes/.bin:$PATH"
export PYTHONPATH="$_ssdconvert_fakes${PYTHONPATH:+:$PYTHONPATH}"
export SSDCONVERT_AIS_BENCH_PYTHON="$_ssdconvert_python"
export SSDCONVERT_MAGICMIND_PYTHON="$_ssdconvert_python"
export FAKE_MM_RUN_DURATION_MS="${FAKE_MM_RUN_DURATION_MS:-300}"
unset _tool
echo "fake atc, mm_run, ais_bench and magicmind active (python: $_ssdconvert_python)"
