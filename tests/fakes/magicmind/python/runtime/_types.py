"""The value types the fake MagicMind shares between its build and run halves: Status, Code, Dims, DataType."""

from __future__ import annotations

import enum
import os

import numpy as np


class Code(enum.Enum):
    OK = 0
    INVALID_ARGUMENT = 1
    OUT_OF_RANGE = 2
    INTERNAL = 3


class Status:
    """`mm.Status()` / `mm.Status.OK()` is ok; `mm.Status(mm.Code.OUT_OF_RANGE, "...")` is not
    (magicmind_cloud gen_model/calibrator.py)."""

    def __init__(self, code: Code = Code.OK, message: str = ""):
        self.code, self._message = code, message

    @staticmethod
    def OK() -> "Status":  # noqa: N802 - the runtime's spelling
        return Status()

    def ok(self) -> bool:
        return self.code == Code.OK

    def __str__(self) -> str:
        return self._message if not self.ok() else "OK"

    __repr__ = __str__


def error(message: str) -> Status:
    """A failed Status with the runtime's `[MMERROR]` prefix."""
    return Status(Code.INTERNAL, f"[MMERROR] {message}")


class Dims:
    def __init__(self, dims):
        self._dims = [int(d) for d in dims]

    def GetDims(self) -> list[int]:  # noqa: N802 - the runtime's spelling
        return list(self._dims)

    def GetDimValue(self, i: int) -> int:  # noqa: N802
        return self._dims[i]

    def __repr__(self) -> str:
        return f"Dims({self._dims})"


class DataType(enum.Enum):
    FLOAT32 = 0
    FLOAT16 = 1
    UINT8 = 2
    INT8 = 3
    INT16 = 4
    INT32 = 5
    INT64 = 6
    UINT16 = 7
    UINT32 = 8
    BOOL = 9
    QINT8 = 10
    QINT16 = 11


NUMPY = {DataType.FLOAT32: np.float32, DataType.FLOAT16: np.float16, DataType.UINT8: np.uint8,
         DataType.INT8: np.int8, DataType.INT16: np.int16, DataType.INT32: np.int32, DataType.INT64: np.int64,
         DataType.UINT16: np.uint16, DataType.UINT32: np.uint32, DataType.BOOL: np.bool_}
ORT = {"tensor(float)": DataType.FLOAT32, "tensor(float16)": DataType.FLOAT16, "tensor(uint8)": DataType.UINT8,
       "tensor(int32)": DataType.INT32, "tensor(int64)": DataType.INT64}


def visible_devices() -> int:
    return int(os.environ.get("FAKE_MLU_COUNT", "1"))
