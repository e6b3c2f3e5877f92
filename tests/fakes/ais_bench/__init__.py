"""Contract-faithful fake of the Ascend ais_bench .om inference tool, for tests only.

Put tests/fakes on PYTHONPATH, then `python -m ais_bench --model x.om ...` behaves like the
standalone tool, except that the ".om" is an ONNX file run with ONNX Runtime on the CPU (its "NPU
compute time" is the session.run time).

Sources, read for this fake:
  * standalone  Ascend/tools ais-bench_workload/tool/ais_bench (git 9d6da90, 2023-06-10): `ais_bench/infer/`
                __main__.py, interface.py, io_oprations.py, utils.py, summary.py; backend/ (aclruntime C++);
  * ait         mjlovesz/sync-ait ait/components/benchmark/ais_bench (the ait copy): tags AIT-6.0.RC2.001
                (9361c0ce5, 2023-07-06) and AIT-6.0.RC3.001 (248dcf52c, 2023-10-11), master c432ed56 (2024-05-23);
                `--divide_input` came in with commit 0765eb473 (2023-07-25), between the two tags.

Faithful: standalone flag spellings, inputs filtered to *.bin|*.BIN|*.npy|*.NPY and natural-sorted
(digit runs as numbers, the rest lower-cased), files-per-inference from the om input's realsize (the
chosen gear's bytes with --dymBatch) with the tool's mismatch messages, concatenation without dtype
conversion (the bytes are read in the om input's dtype: uint8 NHWC for an AIPP .om), last batch padded
with its first file and no outputs for padding, `<stem>_<i>.bin` with the stem cut at the first dot,
`<output>/<dirname>_summary.json` whose `filesinfo` is keyed by sample id (batch x files per inference +
position; JSON makes it a string) with one input file per model input and the sample's output files, the
newer version's mangled NPU_compute_time percentile key, the `[INFO]` console summary lines, RuntimeError
-> traceback, exit code 1.

Several devices (`--device 0,1,...`), by FAKE_AIS_BENCH_VERSION:
  standalone   split always: ceil(n/jobs) files each in device-list order (trailing devices may get none and
               fail); folders `device<N>/` and `device<N>_summary.json`; no --divide_input flag;
  ait-6.0.RC2  split always: floor(n/jobs), the first n % jobs devices one more; `device<N>_<i>/`
               (i = position in the list) and `device<N>_<i>_summary.json`; no --divide_input flag;
  ait-6.0.RC3  (default, the current tool) `--divide_input` accepted (default False): split as RC2 with it,
               without it every device runs every input.
The console ends with `i:<k> device_<N> throughput:...` lines and `[INFO] summary throughput:<sum>`; exit
code 1 if a device failed. The version also picks the Python API generation (infer/interface.py).

Failure injection (env FAKE_AIS_BENCH_FAIL): device | oom | load | nosummary (with several devices,
`device` fails the last one).
FAKE_AIS_BENCH_OLD_KEYS=1 writes the older tool's plain `percentile(99%)` key.
"""

__version__ = "0.0.3-fake"
