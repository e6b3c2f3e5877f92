"""ONNX Runtime's --calibration: percentile and minmax give the scales their definitions say, on a crafted
one-Conv model whose calibration images hold one outlier (expected scales computed literally here)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from ssdconvert.backends.onnxruntime.quantize import quantize
from ssdconvert.errors import SsdConvertError

OUTLIER = 1000.0


class CraftedSamples:
    """The part of samples.SampleSet the quantizer reads: len, subset, batches."""

    def __init__(self, images: list[np.ndarray]):
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, indices):
        return CraftedSamples([self.images[i] for i in indices])

    def batches(self, inputs, batch: int):
        for start in range(0, len(self.images), batch):
            part = self.images[start:start + batch]
            yield None, {"x": np.stack(part)}, len(part)


def one_conv(path: Path) -> Path:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 10, 10])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 2, 10, 10])
    w = numpy_helper.from_array(np.array([1.0, 0.5], np.float32).reshape(2, 1, 1, 1), "w")
    b = numpy_helper.from_array(np.zeros(2, np.float32), "b")
    graph = helper.make_graph([helper.make_node("Conv", ["x", "w", "b"], ["y"], name="conv")], "one_conv", [x], [y],
                              [w, b])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8), str(path))
    return path


def crafted_images(count: int = 3) -> list[np.ndarray]:
    """Each image: one 0.0, 98 values 1.0, one outlier."""
    image = np.ones(100, np.float32)
    image[0], image[-1] = 0.0, OUTLIER
    return [image.reshape(1, 10, 10).copy() for _ in range(count)]


def input_scale(model: Path) -> float:
    """The scale of the QuantizeLinear that quantizes the graph input x."""
    graph = onnx.load(str(model)).graph
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    (node,) = [n for n in graph.node if n.op_type == "QuantizeLinear" and n.input[0] == "x"]
    return float(inits[node.input[1]])


def run(tmp_path: Path, name: str, **calibration) -> tuple[float, dict]:
    out = tmp_path / f"{name}.onnx"
    settings = quantize(one_conv(tmp_path / "fp32.onnx"), CraftedSamples(crafted_images()), out, exclude=(),
                        ort_types="u8s8", per_channel=True, say=lambda s: None, **calibration)
    return input_scale(out), settings


def test_minmax_scale_spans_the_outlier(tmp_path):
    scale, settings = run(tmp_path, "minmax", calibration="minmax")
    # U8 asymmetric: scale = (max(rmax, 0) - min(rmin, 0)) / 255 with rmin, rmax the calibration min and max
    assert scale == pytest.approx((OUTLIER - 0.0) / 255, rel=1e-6)
    assert settings["calibration"] == "MinMax" and settings["calibration_batch"] == 4


def test_percentile_scale_cuts_the_outlier_at_its_histogram_edge(tmp_path):
    scale, settings = run(tmp_path, "pct", calibration="percentile", percentile=95.0)
    # ONNX Runtime's symmetric percentile: a 2048-bin histogram of |x| over [0, 1000]; the cumulative share
    # passes 95 % in the bin holding the 98 ones (bin 2: [2, 3) x 1000/2048, cumulative 0.99), and the range is
    # that bin's left edge, clipped below at the calibration minimum 0.0
    edge = 2 * OUTLIER / 2048
    assert edge < 1.0 < 3 * OUTLIER / 2048  # the ones really sit in bin 2
    assert scale == pytest.approx((edge - 0.0) / 255, rel=1e-6)
    assert settings["calibration"] == "Percentile 95" and settings["calibration_batch"] == 1
    assert scale < run(tmp_path, "minmax", calibration="minmax")[0] / 500


def test_default_is_percentile_99_999(tmp_path):
    scale, settings = run(tmp_path, "default")
    assert settings["calibration"] == "Percentile 99.999"
    # 99.999 % of 300 values cannot leave out the 3 outliers: the range is the left edge of the last bin
    assert scale == pytest.approx(2047 * OUTLIER / 2048 / 255, rel=1e-6)


def test_unknown_calibration_and_bad_percentile_are_refused(tmp_path):
    with pytest.raises(SsdConvertError, match="unknown ONNX Runtime calibration"):
        run(tmp_path, "bad", calibration="kl")
    with pytest.raises(SsdConvertError, match="--percentile"):
        run(tmp_path, "bad", calibration="percentile", percentile=0.0)
