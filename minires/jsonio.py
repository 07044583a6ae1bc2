"""Results files: strict JSON (NaN and infinity written as null, which JSON has instead),
written atomically so an interrupted run never leaves half a file."""
from __future__ import annotations

import json
import math
import os


def json_safe(obj):
    """``obj`` with every NaN or infinity replaced by None (JSON has neither)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def write_json(obj, path: str) -> None:
    """Write ``obj`` as strict JSON, atomically (a temporary file renamed over ``path``)."""
    tmp = path + ".tmp"
    try:
        with open(tmp, "w") as f:
            json.dump(json_safe(obj), f, indent=1, allow_nan=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:           # an error or Ctrl-C: the old file stays, no temporary
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
