"""Device compilers: one subprocess adapter per toolchain over one small base.

    from ssdconvert.compilers.atc import build_om             # Ascend ATC      -> .om
    from ssdconvert.compilers.magicmind import build_magicmind  # Cambricon MLU -> MagicMind model
    from ssdconvert.compilers.openvino import convert_ir      # OpenVINO ovc   -> .xml/.bin

Each returns a `CompileResult` (base.py). Nothing heavy is imported here.
"""

from ssdconvert.compilers.base import (
    ArtefactMissingError, CompileResult, CompilerError, ToolFailedError, ToolNotFoundError, ToolTimeoutError,
)

__all__ = ["CompileResult", "CompilerError", "ToolNotFoundError", "ToolFailedError", "ToolTimeoutError",
           "ArtefactMissingError"]
