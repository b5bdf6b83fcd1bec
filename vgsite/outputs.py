"""Writing results so that a crash never leaves a half-written file and an unchanged result never touches disk."""
import io
import json
import math
import os
import tempfile
from pathlib import Path

import numpy as np

PNG_DPI = 110


def write_if_changed(path: Path, data: bytes) -> bool:
    """Atomically replace `path` with `data`; skip the write when the bytes are already there.

    Skipping keeps file times still, so `mkdocs serve` does not reload (and loop) on a rebuild.
    """
    path = Path(path)
    if path.exists() and path.read_bytes() == data:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True


def clean_number(x, digits=6):
    """JSON has no inf or nan, and float noise beyond 6 significant digits only hurts diffs."""
    x = float(x)
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return 0.0 if x == 0 else float(f"{x:.{digits}g}")


def plain(obj):
    """Turn tensors, arrays and numpy scalars into plain JSON values."""
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if hasattr(obj, "detach"):  # torch tensor
        obj = obj.detach().cpu().numpy()
    if isinstance(obj, np.ndarray):
        return plain(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return clean_number(obj)
    return obj


def json_bytes(obj) -> bytes:
    return (json.dumps(plain(obj), indent=1, sort_keys=True, allow_nan=False) + "\n").encode()


def png_bytes(fig) -> bytes:
    """Render a matplotlib figure to PNG bytes that depend only on what is drawn (no timestamp, no version)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=PNG_DPI, metadata={"Software": None})
    return buf.getvalue()
