"""Turning record bodies into JSON: the one place that decides how bytes look.

Bytes (binary-format parameters, hashes inside bodies) become ``{"base64": "..."}``
so they cannot be confused with text; map keys become strings; a float that is not
finite (only an edited recording holds one) becomes the string Python writes for it
(``"nan"``, ``"inf"``, ``"-inf"``), so the output is strict JSON; anything else msgpack
can hold maps to its JSON counterpart.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Mapping
from typing import Any


def to_jsonable(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return {"base64": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, Mapping):
        return {str(key): to_jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return repr(value)


def dumps(value: Any) -> str:
    """Compact, strict JSON (no NaN or Infinity), non-ASCII kept as is."""
    return json.dumps(
        to_jsonable(value), ensure_ascii=False, separators=(",", ":"), allow_nan=False
    )
