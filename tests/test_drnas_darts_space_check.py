"""reproduce.drnas_darts_space_check: a DARTS-space DrNAS search at a reduced size, scored by the NB301 stand-in."""
import json

import numpy as np
import pytest

from algorithms.nn.search import device_name
from benchmarks.darts_space import PUBLISHED
from reproduce.drnas_darts_space_check import check, main, markdown
from reproduce.papers.drnas import STANDIN_RANDOM_CELLS, standin_note, standin_scores

pytestmark = pytest.mark.data

#: a tiny progressive DARTS-space search on 128 weight / 128 architecture images, the real section otherwise
TINY = {"channels": 8, "cells": 2, "image_size": 16, "train_subset": 256, "stage_epochs": [1, 1],
        "partial_k": [4, 2], "arch_warmup_epochs": [0, 0], "precision": "fp32", "channels_last": False}


def test_standin_scores_set_a_genotype_beside_the_published_cells_and_random_ones(data_root):
    published = PUBLISHED["drnas_cifar10"]
    scores = standin_scores([str(published), str(PUBLISHED["darts_v2"])])
    # the genotype text and the published cell are the same cell: the same score
    assert scores["valid"][0] == pytest.approx(scores["published"]["drnas_cifar10"], abs=1e-3)
    assert scores["valid"][1] == pytest.approx(scores["published"]["darts_v2"], abs=1e-3)
    random = scores["random"]
    assert random["cells"] == STANDIN_RANDOM_CELLS and random["p5"] < random["p50"] < random["p95"]
    assert all(0 <= p <= 100 for p in scores["percentile"])
    assert standin_scores([str(published)]) == {**scores, "valid": scores["valid"][:1],
                                                "percentile": scores["percentile"][:1]}  # a fixed yardstick
    # a published cell's percentile among the random cells is that of the same cell passed as a genotype
    assert scores["percentile"] == [scores["published_percentile"][k] for k in ("drnas_cifar10", "darts_v2")]
    note = standin_note(scores, 1)
    assert "not NAS-Bench-301" in note and "not a trained result" in note
    assert f"{scores['valid'][1]:.2f} %" in note


def test_standin_missing_is_said_in_the_note_and_is_one_line_before_any_search(tmp_path, monkeypatch, capsys):
    (tmp_path / "empty").mkdir()  # a data root without the stand-in's files
    monkeypatch.setenv("NASREPRO_DATA", str(tmp_path / "empty"))
    scores = standin_scores(["anything"])
    assert "unavailable" in scores and "not available here" in standin_note(scores)
    assert main(["--device", "cpu", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "stand-in" in err[0] and "not found" in err[0]
    assert not (tmp_path / "out").exists()


def test_search_scores_every_epoch_and_resumes(tmp_path, data_root, one_torch_thread):
    written = []
    summary = check([0], "cpu", tmp_path, overrides=TINY, images="cifar10-subset", progress=False,
                    on_progress=lambda s: written.append([len(r["epochs"]) for r in s["runs"]]))
    assert written == [[1], [2], [2]]  # after each epoch, then at the search's end
    (run,) = summary["runs"]
    assert run["finished"] and [r["stage"] for r in run["epochs"]] == [0, 1]
    assert run["final_params"].endswith("at 36 channels / 20 cells")
    for row in run["epochs"]:
        assert row["arch"].startswith("Genotype(") and 0 <= row["standin_percentile"] <= 100
        assert row["standin_valid"] == pytest.approx(standin_scores([row["arch"]])["valid"][0], abs=1e-3)
    reloaded = []
    again = check([0], "cpu", tmp_path, overrides=TINY, images="cifar10-subset", progress=False,
                  on_progress=lambda s: reloaded.append([len(r["epochs"]) for r in s["runs"]]))
    assert reloaded == [[2]]  # reloaded from the checkpoint: no epoch ran again, only the final summary
    assert again["runs"][0]["epochs"] == run["epochs"] and again["device"] == device_name("cpu")
    text = markdown(summary)
    assert "not NAS-Bench-301" in text and "Derived genotypes of the finished searches" in text
    assert f"| 0 | {run['epochs'][-1]['standin_valid']:.2f} |" in text


def test_main_writes_files_named_by_the_settings(tmp_path, data_root, one_torch_thread):
    args = ["--seeds", "0", "--images", "cifar10-subset", "--device", "cpu", "--out", str(tmp_path)]
    for key, value in TINY.items():
        args += ["--set", f"{key}={json.dumps(value).lower()}"]
    assert main(args) == 0
    (stem,) = {p.with_suffix("") for p in tmp_path.glob("seeds0-*.json")}
    assert "channels-8" in stem.name and "cells-2" in stem.name
    for suffix in (".json", ".md", ".png"):
        assert stem.with_suffix(suffix).stat().st_size > 0
    summary = json.loads(stem.with_suffix(".json").read_text())
    assert np.isclose(summary["standin"]["published"]["drnas_cifar10"], standin_scores([])["published"]["drnas_cifar10"])


@pytest.mark.parametrize("setting, message", [("channels=16", "do not split into partial_k 6 equal parts"),
                                               ("learning_rate=0.1", "unknown hyper-parameter")])
def test_bad_settings_are_one_clear_line(tmp_path, data_root, capsys, setting, message):
    assert main(["--set", setting, "--images", "cifar10-subset", "--device", "cpu", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not list(tmp_path.glob("*.json"))
