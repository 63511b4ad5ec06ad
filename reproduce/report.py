"""``nasrepro report``: one Markdown page with every paper's headline numbers, ours beside the paper's.

Each paper module writes ``results/<paper>/<scale>/headline.json`` in the schema of :class:`Headline`
(build it with :class:`Headline` / :class:`HeadlineRow` and :meth:`Headline.write`, which validates).
The report lists, per paper and scale, every claim with the paper's value and ours, the seeds, the
verdict and the figures (relative links); papers with no output yet are listed as "not run yet".
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from nasrepro.errors import DataError
from nasrepro.io import atomic_write_json, atomic_write_text

#: paper key -> title (the keys are the modules of reproduce/papers and the `nasrepro reproduce` names)
PAPERS = {
    "drnas": "DrNAS: Dirichlet Neural Architecture Search",
    "deltanas": "Delta-NAS",
    "sampling": "Efficient Sampling for Predictor-Based Neural Architecture Search",
    "fade": "FaDE",
}
SCALES = ("quick", "full")
#: "not run": the experiment exists but this output was made without it (e.g. ``--only`` selected other runs)
VERDICTS = ("reproduced", "partial", "not reached", "not measurable here", "not run")
HEADLINE_FILE = "headline.json"


@dataclass(frozen=True)
class HeadlineRow:
    claim: str
    paper: str
    ours: str
    seeds: int
    verdict: str
    note: str = ""

    def __post_init__(self) -> None:
        for name in ("claim", "paper", "ours", "note"):
            if not isinstance(getattr(self, name), str):
                raise DataError(f"headline row: {name} must be a string, got {getattr(self, name)!r}")
        if not isinstance(self.seeds, int) or isinstance(self.seeds, bool) or self.seeds < 0:
            raise DataError(f"headline row {self.claim!r}: seeds must be a non-negative integer")
        if self.verdict not in VERDICTS:
            raise DataError(f"headline row {self.claim!r}: verdict {self.verdict!r} is not one of "
                            f"{', '.join(VERDICTS)}")


@dataclass(frozen=True)
class Headline:
    paper: str
    title: str
    scale: str
    command: str
    date: str
    rows: tuple[HeadlineRow, ...]
    figures: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.paper not in PAPERS:
            raise DataError(f"headline: unknown paper {self.paper!r}; choose from {', '.join(PAPERS)}")
        if self.scale not in SCALES:
            raise DataError(f"headline: scale must be one of {', '.join(SCALES)}, got {self.scale!r}")
        for name in ("title", "command", "date"):
            if not isinstance(getattr(self, name), str):
                raise DataError(f"headline: {name} must be a string")
        object.__setattr__(self, "rows", tuple(self.rows))
        object.__setattr__(self, "figures", tuple(self.figures))
        if not all(isinstance(r, HeadlineRow) for r in self.rows):
            raise DataError("headline: rows must be HeadlineRow objects")
        for fig in self.figures:
            if not isinstance(fig, str) or Path(fig).is_absolute() or ".." in Path(fig).parts:
                raise DataError(f"headline: figure {fig!r} must be a path relative to the headline's folder")

    @classmethod
    def from_dict(cls, data: Any) -> "Headline":
        if not isinstance(data, dict):
            raise DataError("headline: expected a JSON object")
        expected = {"paper", "title", "scale", "command", "date", "rows", "figures"}
        missing, unknown = expected - set(data), set(data) - expected
        if missing or unknown:
            raise DataError(f"headline: missing {sorted(missing)}, unknown {sorted(unknown)}")
        rows = data["rows"]
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise DataError("headline: rows must be a list of objects")
        try:
            parsed = tuple(HeadlineRow(**r) for r in rows)
        except TypeError as exc:
            raise DataError(f"headline row: {exc}") from None
        if not isinstance(data["figures"], list):
            raise DataError("headline: figures must be a list of relative paths")
        return cls(data["paper"], data["title"], data["scale"], data["command"], data["date"], parsed,
                   tuple(data["figures"]))

    @classmethod
    def read(cls, path: Path) -> "Headline":
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise DataError(f"{path}: unreadable headline ({exc})") from None
        try:
            return cls.from_dict(data)
        except DataError as exc:
            raise DataError(f"{path}: {exc}") from None

    def to_dict(self) -> dict:
        data = asdict(self)
        data["rows"] = [asdict(r) for r in self.rows]
        data["figures"] = list(self.figures)
        return data

    def write(self, path: Path) -> Path:
        atomic_write_json(path, self.to_dict())
        return Path(path)


def write_report(results: Path) -> Path:
    """Write ``<results>/REPORT.md`` and return its path."""
    results = Path(results)
    lines = ["# Reproduction report", "",
             "Generated by `nasrepro report` from the `headline.json` files under this folder. "
             "\"Paper\" is the value the paper reports; \"ours\" what this suite measured.", ""]
    for paper, title in PAPERS.items():
        lines.append(f"## {title} (`{paper}`)")
        lines.append("")
        found = [(scale, results / paper / scale / HEADLINE_FILE) for scale in SCALES]
        found = [(scale, p) for scale, p in found if p.is_file()]
        if not found:
            lines += [f"Not run yet: `nasrepro reproduce {paper} --quick` (or `--full`).", ""]
            continue
        for scale, path in found:
            headline = Headline.read(path)
            if (headline.paper, headline.scale) != (paper, scale):
                raise DataError(f"{path} says paper {headline.paper!r}, scale {headline.scale!r}; "
                                f"its folder says {paper!r}, {scale!r}")
            lines += _section(headline, path.parent, results)
    report = results / "REPORT.md"
    atomic_write_text(report, "\n".join(lines).rstrip() + "\n")
    return report


def headline_table(rows: Any) -> list[str]:
    """Headline rows (:class:`HeadlineRow` or their dicts) as the lines of a Markdown table, header first:
    the one table every paper's ``results.md`` and ``REPORT.md`` print."""
    lines = ["| claim | paper | ours | seeds | verdict | note |", "|---|---|---|---|---|---|"]
    for row in rows:
        r = row if isinstance(row, dict) else asdict(row)
        cells = [r["claim"], r["paper"], r["ours"], str(r["seeds"]), r["verdict"], r["note"]]
        lines.append("| " + " | ".join(_md_cell(str(c)) for c in cells) + " |")
    return lines


def _section(headline: Headline, folder: Path, results: Path) -> list[str]:
    lines = [f"### Scale: {headline.scale}", "",
             f"Command: `{headline.command}` — date: {headline.date}", "", *headline_table(headline.rows)]
    if not headline.rows:
        lines.append("| (no headline numbers) | | | | | |")
    lines.append("")
    for fig in headline.figures:
        target = Path(os.path.relpath(folder / fig, results)).as_posix()
        missing = "" if (folder / fig).is_file() else " (file missing)"
        embed = "!" if Path(fig).suffix.lower() in (".png", ".jpg", ".svg") else ""
        lines.append(f"- {embed}[{fig}]({target}){missing}")
    if headline.figures:
        lines.append("")
    return lines


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
