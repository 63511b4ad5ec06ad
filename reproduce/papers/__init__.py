"""One module per paper: ``run(scale, out) -> Path`` reproduces it and writes ``out/headline.json``
(schema: :class:`reproduce.report.Headline`) and its figures. This package only dispatches."""
from __future__ import annotations

import inspect
from importlib import import_module
from pathlib import Path
from types import ModuleType

from nasrepro.errors import ConfigError
from reproduce.report import PAPERS, SCALES


def load(paper: str) -> ModuleType:
    """The paper's module; :class:`ConfigError` if the name is unknown or the module not written yet."""
    if paper not in PAPERS:
        raise ConfigError(f"unknown paper {paper!r}; choose from {', '.join(PAPERS)}, all")
    name = f"{__name__}.{paper}"
    try:
        return import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:  # a real import error inside the module: let it show
            raise
        raise ConfigError(f"paper {paper!r}: not implemented yet") from None


def runs_dir(out: Path) -> Path:
    """Where a paper module puts its raw runs (git-ignored; the headline and figures sit beside it)."""
    return Path(out) / "runs"


def available() -> list[str]:
    """Papers whose module exists."""
    return [p for p in PAPERS if (Path(__file__).parent / f"{p}.py").is_file()]


def run(paper: str, scale: str, out: Path, only: str | None = None, device: str | None = None,
        threads: int | None = None, report_only: bool = False) -> Path:
    """``only``: a glob over the paper's run names; ``device``: where a paper that trains networks trains them;
    ``threads``: CPU threads per search; ``report_only``: run nothing, report finished and unfinished runs.
    Papers whose ``run`` takes no such argument refuse it."""
    if scale not in SCALES:
        raise ConfigError(f"scale must be one of {', '.join(SCALES)}, got {scale!r}")
    module = load(paper)
    options = {name: value for name, value in (("only", only), ("device", device), ("threads", threads),
                                               ("report_only", report_only or None)) if value is not None}
    accepted = inspect.signature(module.run).parameters
    why_not = {"only": "it runs as one piece", "device": "it trains no network",
               "threads": "its workers run one CPU thread each", "report_only": "its runs do not span sessions"}
    for name in options:
        if name not in accepted:
            raise ConfigError(f"paper {paper!r} does not support --{name.replace('_', '-')} ({why_not[name]})")
    return Path(module.run(scale, Path(out), **options))
