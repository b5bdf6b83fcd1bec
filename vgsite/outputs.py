"""Writing results so that a crash never leaves a half-written file and an unchanged result never touches disk.

A file is written to `.NAME.PID.XXXX.tmp` beside it, then renamed over it: a kill leaves either the old file or
the new one. The PID says whose temporary file it is, so a later run sweeps it only once that process is gone.
Files get the modes the umask allows (0644 under umask 022), as any other program's would.
"""
import io
import json
import math
import os
import re
import tempfile
import time
from pathlib import Path

import numpy as np

SCALE = 2  # pixels per CSS px: sharp on high-density screens
PNG_COLORS = 256  # a palette PNG: about a third of the bytes of a full-colour one, and no visible difference


def write_if_changed(path: Path, data: bytes) -> bool:
    """Atomically replace `path` with `data`; skip the write when the bytes are already there.

    Skipping keeps file times still, so `mkdocs serve` does not reload (and loop) on a rebuild.
    """
    path = Path(path)
    if path.exists() and path.read_bytes() == data:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~umask())  # mkstemp makes 0600: a web server or an rsync deploy could not read it
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True


TMP = re.compile(r"^\..+\.(\d+)\.[^.]+\.tmp$")
ORPHAN_AGE = 600  # seconds: a temporary file that names no process (an older vgsite wrote it) is swept after this


def umask() -> int:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def dir_mode() -> int:
    return 0o777 & ~umask()


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def sweep_tmp(folder: Path) -> int:
    """Delete the temporary files under `folder` whose writing process is gone; those of live runs stay."""
    removed = 0
    for parent, dirs, names in os.walk(folder):  # does not follow links out of the folder
        for name in names:
            if not (name.startswith(".") and name.endswith(".tmp")):
                continue
            path = Path(parent) / name
            owner = TMP.match(name)
            if owner:
                if pid_alive(int(owner.group(1))):
                    continue
            else:
                try:
                    if time.time() - path.lstat().st_mtime < ORPHAN_AGE:
                        continue
                except OSError:
                    continue
            try:
                path.unlink()
                removed += 1
            except OSError:
                pass
    return removed


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


def png_dpi(scale: float = SCALE) -> float:
    from vgsite.plots import CSS_PX_PER_INCH

    return CSS_PX_PER_INCH * scale


def rendered(fig, scale: float = SCALE):
    """The figure's pixels at `scale` pixels per CSS px of its displayed size (vgsite.plots.CSS_PX_PER_INCH per
    inch), as a Pillow RGB image: Agg's buffer goes to Pillow directly (no PNG encoded and decoded in between)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from PIL import Image

    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    dpi = fig.dpi
    fig.set_dpi(png_dpi(scale))
    try:
        rgba, size = canvas.print_to_buffer()
    finally:
        fig.set_dpi(dpi)
    return Image.frombuffer("RGBA", size, rgba, "raw", "RGBA", 0, 1).convert("RGB")


def encoded(image) -> bytes:
    """PNG bytes that depend only on the pixels (no timestamp, no version), the colours reduced to a palette
    (Pillow's fast octree, no dithering: lines and text stay crisp), which makes the file ~3× smaller."""
    from PIL import Image

    out = io.BytesIO()
    image.quantize(PNG_COLORS, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE).save(out, format="PNG")
    return out.getvalue()


def png_bytes(fig, scale: float = SCALE) -> bytes:
    """A matplotlib figure as PNG bytes, at 2 pixels per CSS px by default, so that it is sharp on a high-density
    screen; the page gives it width and height at 1×."""
    return encoded(rendered(fig, scale))


def png_pair(fig) -> tuple[bytes, bytes]:
    """The figure at 2× (png_bytes) and the same pixels resampled to its displayed size, 1×, for the page's
    srcset. Resampled, not drawn again: drawing once leaves the figure as it was for the next rendering."""
    from PIL import Image

    from vgsite.plots import CSS_PX_PER_INCH

    image = rendered(fig)
    shown = tuple(round(inches * CSS_PX_PER_INCH) for inches in fig.get_size_inches())
    return encoded(image), encoded(image.resize(shown, Image.Resampling.LANCZOS))


def render_figures(topic: str, plots: list) -> tuple[dict, dict]:
    """Each Plot as PNG bytes, as drawn (light theme) and restyled for the dark one, each at 2× and 1×, and what
    the record says about it: alt text, caption, size and smallest font (vgsite.plots.meta; tests/test_figures.py)."""
    from vgsite.plots import dark, meta
    from vgsite.registry import at_1x, dark_figure_file, figure_file

    files, shown = {}, {}
    for plot in plots:
        light = figure_file(topic, plot.name)
        files[light], files[at_1x(light)] = png_pair(plot.fig)
        shown[plot.name] = {"alt": plot.alt, "caption": plot.caption, **meta(plot.fig)}
        night, fig = dark_figure_file(topic, plot.name), dark(plot.fig)
        files[night], files[at_1x(night)] = png_pair(fig)
    return files, shown
