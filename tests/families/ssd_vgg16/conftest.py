"""ssd-vgg16 tests: the plain loop baselines live in benchmarks/ (shared with the benchmark)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "benchmarks"))
