"""Figures for results/: matplotlib without a display, every figure written once as PNG and once as PDF."""
from __future__ import annotations

from pathlib import Path
from typing import Any

#: resolution of the PNGs (the PDFs are vector)
DPI = 150


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the non-interactive Agg backend (runs headless, in CI and worker processes)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig: Any, path: str | Path, dpi: int = 120) -> Path:
    """Lay ``fig`` out tightly, write it to ``path`` (PNG), close it; the one-file figures of the diagnostics."""
    path = Path(path)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    pyplot().close(fig)
    return path


def save(fig: Any, stem: str | Path) -> list[Path]:
    """Write ``fig`` to ``stem`` with suffix .png and .pdf (a suffix already on ``stem`` is replaced), close
    it, and return the two paths."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(".png"), stem.with_suffix(".pdf")]
    for path in paths:
        fig.savefig(path, dpi=DPI)
    pyplot().close(fig)
    return paths
