"""The input of STMicroelectronics' SSD-MobileNetV2-FPNLite: its X-LINUX-AI app's resize, as uint8 NHWC.

STMicroelectronics/meta-st-x-linux-ai recipes-samples/object-detection/files/stai-mpu/
stai_mpu_object_detection.py at 364e6b4a (process_picture): `img = Image.open(path)`, then
`cv2.resize(np.array(img), (nn_input_width, nn_input_height))` (INTER_LINEAR, the default), fed as is:
the model's uint8 input is RGB, HWC, un-normalised, and the graph dequantizes it itself. PIL does not
apply the EXIF orientation and neither does this. The app hands cv2 whatever PIL decoded, which breaks
for a grayscale or palette file (2-D or 1-channel arrays the model cannot take); here every image is
converted to RGB first (PIL `convert("RGB")`, as every PIL family does), which changes nothing for RGB
files.

The transform is preprocess.transform's (decoder pil, resize cv2_linear, raw RGB pixels); what differs
from the CHW families is only the model's view of it: its input is the uint8 HWC tensor itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from preprocess.errors import PreprocessError
from preprocess.spec import ImageTransform


@dataclass(frozen=True)
class StAppTransform(ImageTransform):
    """PIL decode -> RGB -> cv2.resize INTER_LINEAR to width x height -> uint8 HWC (no normalisation)."""

    height: int = 256
    width: int = 256
    resize: str = "cv2_linear"
    scale: float = 1.0
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    decoder: str = "pil"

    dtypes: ClassVar[tuple[str, ...]] = ("uint8",)  # the model's own input: raw pixels

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """The model's per-image input shape: HWC."""
        return self.height, self.width, 3

    def converter(self, dtype: str = "uint8"):
        if dtype not in self.dtypes:
            raise PreprocessError(f"this model's transform writes {', '.join(self.dtypes)} only, not {dtype}: its "
                                  "input is the raw pixels")
        return super().converter(dtype)

    def describe(self) -> dict:
        return {**super().describe(), "layout": "NHWC", "decoder": "pil (no EXIF transpose), convert('RGB')",
                "resize": f"cv2.resize INTER_LINEAR {self.width}x{self.height} of the PIL pixels, aspect not kept",
                "values": "uint8 pixels as they are (scale 1, mean 0, std 1): the graph dequantizes its input"}


ST_SSD_MOBILENET_256 = StAppTransform()
