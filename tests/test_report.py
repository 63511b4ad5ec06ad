"""``reproduce.report``: the headline.json schema and REPORT.md."""
from __future__ import annotations

import json

import pytest

from nasrepro.cli import main
from nasrepro.errors import DataError
from reproduce.report import PAPERS, Headline, HeadlineRow, write_report


def headline(**kw) -> Headline:
    fields = dict(paper="drnas", title="DrNAS", scale="quick", command="nasrepro reproduce drnas --quick",
                  date="2026-11-22",
                  rows=[HeadlineRow("NB201 CIFAR-10 test acc", "94.36 ± 0.00", "93.9 ± 0.2", 3, "partial",
                                    "quick | 10 epochs"),
                        HeadlineRow("search cost", "0.4 GPU-days", "n/a", 0, "not measurable here")],
                  figures=["figures/curve.png", "figures/curve.pdf"])
    fields.update(kw)
    return Headline(**fields)


def test_headline_round_trips_through_json(tmp_path):
    path = headline().write(tmp_path / "headline.json")
    data = json.loads(path.read_text())
    assert set(data) == {"paper", "title", "scale", "command", "date", "rows", "figures"}
    assert Headline.read(path) == headline()


@pytest.mark.parametrize("change, message", [
    ({"paper": "nope"}, "unknown paper"),
    ({"scale": "medium"}, "scale"),
    ({"figures": ["/abs/fig.png"]}, "relative"),
    ({"figures": ["../outside.png"]}, "relative"),
])
def test_headline_rejects_bad_fields(change, message):
    with pytest.raises(DataError, match=message):
        headline(**change)


def test_headline_rejects_bad_rows_and_files(tmp_path):
    with pytest.raises(DataError, match="verdict"):
        HeadlineRow("c", "1", "2", 1, "sort of")
    with pytest.raises(DataError, match="seeds"):
        HeadlineRow("c", "1", "2", -1, "reproduced")
    data = headline().to_dict()
    del data["date"]
    with pytest.raises(DataError, match="missing"):
        Headline.from_dict(data)
    bad = tmp_path / "headline.json"
    bad.write_text("{not json")
    with pytest.raises(DataError, match="unreadable"):
        Headline.read(bad)


def test_report_lists_results_and_papers_not_run(tmp_path):
    folder = tmp_path / "drnas" / "quick"
    headline().write(folder / "headline.json")
    (folder / "figures").mkdir()
    (folder / "figures" / "curve.png").write_bytes(b"\x89PNG")
    report = write_report(tmp_path).read_text()
    assert "| NB201 CIFAR-10 test acc | 94.36 ± 0.00 | 93.9 ± 0.2 | 3 | partial | quick \\| 10 epochs |" in report
    assert "![figures/curve.png](drnas/quick/figures/curve.png)" in report
    assert "[figures/curve.pdf](drnas/quick/figures/curve.pdf) (file missing)" in report
    for paper in PAPERS:
        if paper != "drnas":
            assert f"`nasrepro reproduce {paper} --quick`" in report
    assert report.count("Not run yet") == len(PAPERS) - 1


def test_report_command(tmp_path, capsys):
    headline().write(tmp_path / "drnas" / "full" / "headline.json")
    assert main(["report", "--results", str(tmp_path)]) == 2  # a quick headline in the full folder
    headline(scale="full").write(tmp_path / "drnas" / "full" / "headline.json")
    assert main(["report", "--results", str(tmp_path)]) == 0
    assert "Scale: full" in (tmp_path / "REPORT.md").read_text()
    (tmp_path / "drnas" / "full" / "headline.json").write_text('{"paper": "drnas"}')
    capsys.readouterr()
    assert main(["report", "--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("nasrepro: error:") and err.count("\n") == 1
    assert main(["report", "--results", str(tmp_path / "absent")]) == 2
