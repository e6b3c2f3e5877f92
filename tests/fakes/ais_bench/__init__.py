"""Contract-faithful fake of the Ascend ais_bench .om inference tool, for tests only.

Put tests/fakes on PYTHONPATH, then `python -m ais_bench --model x.om ...` behaves like the
standalone tool (Ascend/tools ais-bench_workload/tool/ais_bench, `ais_bench/infer/`), except that
the ".om" is an ONNX file run with ONNX Runtime on the CPU (its "NPU compute time" is the
session.run time).

Faithful: standalone flag spellings, natural-sorted inputs, files-per-inference from byte sizes
(with the tool's mismatch messages), concatenation without dtype conversion, last batch padded
with its first file and no outputs for padding, `<stem>_<i>.bin` with the stem cut at the first
dot, `<output>/<dirname>_summary.json` with the newer version's mangled NPU_compute_time
percentile key, the `[INFO]` console summary lines, RuntimeError -> traceback, exit code 1.

Several devices (`--device 0,1,...`): one run per device, the natural-sorted files of each model
input split into contiguous blocks in device-list order, each device writing
`<output>/<dirname>/device<N>_<i>/` and `device<N>_<i>_summary.json` (newer tool: floor(n/jobs)
files each, the first n % jobs devices one more) or, with FAKE_AIS_BENCH_LAYOUT=old,
`device<N>/` and `device<N>_summary.json` (older standalone tool: ceil(n/jobs) files each, so
trailing devices may get none and fail). The console ends with `i:<k> device_<N> throughput:...`
lines and `[INFO] summary throughput:<sum>`; exit code 1 if a device failed.

Failure injection (env FAKE_AIS_BENCH_FAIL): device | oom | load | nosummary (with several devices,
`device` fails the last one).
FAKE_AIS_BENCH_OLD_KEYS=1 writes the older tool's plain `percentile(99%)` key.
"""

__version__ = "0.0.2-fake"
