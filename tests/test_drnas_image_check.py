"""reproduce.drnas_image_check: the first epochs of the plain DrNAS search at several JPEG qualities."""
import json
import shutil

import numpy as np
import pytest

from algorithms.nn.search import device_name
from nasrepro.errors import ConfigError
from reproduce.drnas_image_check import STORED, _epoch_row, check, main, markdown, parse_qualities, parse_seeds

pytestmark = pytest.mark.data

#: a tiny network on a 256-image subset: the real section otherwise (schedule, optimisers, Dirichlet)
TINY = {"channels": 4, "cells": 1, "image_size": 16, "train_subset": 256, "stage_epochs": [4],
        "channels_last": False, "sample_archs": 5}


def test_parse_qualities_and_seeds():
    assert parse_qualities("stored, 50,25") == [None, 50, 25]
    for bad in ("100", "0", "high", ""):
        with pytest.raises(ConfigError, match="--qualities"):
            parse_qualities(bad)
    assert parse_seeds("0,3") == [0, 3]
    with pytest.raises(ConfigError, match="--seeds"):
        parse_seeds("0,x")


def test_check_runs_each_quality_and_resumes(tmp_path, nb201, one_torch_thread):
    """Two qualities x one seed for 1 epoch, then the same call for 2 epochs resumes: epoch 0 is the checkpoint's,
    unchanged; the re-encoded images give another search than the stored ones."""
    first = check([None, 10], [0], 1, "cpu", tmp_path, images="cifar10-subset", overrides=TINY, progress=False)
    assert [r["name"] for r in first["runs"]] == ["stored-seed0-cifar10-subset", "jpeg10-seed0-cifar10-subset"]
    assert all(len(r["epochs"]) == 1 for r in first["runs"])
    written = []  # the summary so far after every epoch: a time limit that cuts a run keeps what was done
    second = check([None, 10], [0], 2, "cpu", tmp_path, images="cifar10-subset", overrides=TINY, progress=False,
                   on_progress=lambda summary: written.append([len(r["epochs"]) for r in summary["runs"]]))
    assert written == [[2], [2], [2, 2], [2, 2]]  # epoch 1 of each run (epoch 0 was resumed), then the run's end
    for before, after in zip(first["runs"], second["runs"]):
        assert len(after["epochs"]) == 2 and after["epochs"][0] == before["epochs"][0]
    stored, lossy = second["runs"]
    assert stored["epochs"][0]["mean_alpha"] != lossy["epochs"][0]["mean_alpha"]  # the images changed the search
    assert set(stored["epochs"][0]["mean_alpha"]) == {"none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3",
                                                      "avg_pool_3x3"}
    text = markdown(second)
    # the official runs beside ours: epoch 0's train accuracy of runs A and B, and their own table
    assert "| stored | 0 | 0 |" in text and "| JPEG 10 | 0 | 1 |" in text and "(22.6 / 21.9)" in text
    assert "| 1 | 29.5 / 29.4 |" in text
    # TINY shrinks the search, so the official runs (the paper's scale) are a guide to shape, and the table says so
    assert "with cells, channels, image_size, stage_epochs, train_subset changed here" in text
    assert "changed here" not in markdown({**second, "overrides": {"precision": "fp32_strict"}})
    assert "changed here" not in markdown({**second, "overrides": None})


def test_more_epochs_than_the_search_is_one_clear_line(tmp_path, capsys):
    assert main(["--epochs", "101", "--qualities", STORED, "--device", "cpu", "--images", "cifar10-subset",
                 "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "only 100 epochs" in err[0]
    assert not any(tmp_path.iterdir())  # nothing written


def test_main_writes_json_markdown_and_figure(tmp_path, nb201, one_torch_thread, monkeypatch):
    import reproduce.drnas_image_check as module

    real_check = module.check
    monkeypatch.setattr(module, "check", lambda *a, **k: real_check(*a, **{**k, "overrides": TINY}))
    assert main(["--epochs", "1", "--qualities", "stored", "--seeds", "1", "--device", "cpu",
                 "--images", "cifar10-subset", "--out", str(tmp_path)]) == 0
    stem = tmp_path / "epochs1-stored-seeds1-cifar10-subset"
    result = json.loads(stem.with_suffix(".json").read_text())
    assert result["runs"][0]["seed"] == 1 and result["overrides"] == TINY
    assert stem.with_suffix(".png").stat().st_size > 0 and "| stored | 1 | 0 |" in stem.with_suffix(".md").read_text()
    # read back from JSON (keys sorted by name), the table keeps NB201's op order
    assert "| α none | α skip_connect | α nor_conv_1x1 | α nor_conv_3x3 | α avg_pool_3x3 |" in markdown(result)
    # the run's checkpoint, tabulated without running anything, gives the same epochs
    checkpoint = tmp_path / "runs" / "stored-seed1-cifar10-subset" / "checkpoint.pt"
    assert main(["--from-checkpoint", str(checkpoint), "--out", str(tmp_path / "table")]) == 0
    table = json.loads((tmp_path / "table" / "stored-seed1-cifar10-subset-epochs1.json").read_text())
    assert table["runs"][0]["epochs"] == result["runs"][0]["epochs"] and table["device"] == device_name("cpu")
    assert str(checkpoint) in (tmp_path / "table" / "stored-seed1-cifar10-subset-epochs1.md").read_text()
    # a hand-off checkpoint (results/drnas/full/handoff/<run>.pt) is named after its file, not its folder
    handoff = tmp_path / "handoff" / "cifar10-drnas_nb201-seed1.pt"
    handoff.parent.mkdir()
    shutil.copy(checkpoint, handoff)
    assert main(["--from-checkpoint", str(handoff), "--out", str(tmp_path / "table")]) == 0
    table = json.loads((tmp_path / "table" / "cifar10-drnas_nb201-seed1-epochs1.json").read_text())
    assert table["runs"][0]["name"] == "cifar10-drnas_nb201-seed1"


def test_a_file_that_is_no_search_checkpoint_is_one_clear_line(tmp_path, capsys):
    bogus = tmp_path / "checkpoint.pt"
    bogus.write_bytes(b"not a checkpoint")
    for path in (bogus, tmp_path / "missing.pt"):
        assert main(["--from-checkpoint", str(path), "--out", str(tmp_path / "table")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "checkpoint" in err[0]
    assert not (tmp_path / "table").exists()


def test_set_changes_the_section_and_names_runs_and_files(tmp_path, monkeypatch, capsys):
    import reproduce.drnas_image_check as module

    seen = {}
    def fake_check(*args, **kwargs):
        seen.update(kwargs)
        summary = {"date": "today", "device": "cpu", "images": "JPEG", "section": "drnas_nb201", "epochs": 1,
                   "overrides": kwargs["overrides"], "official": {}, "runs": []}
        kwargs["on_progress"](summary)
        return summary

    monkeypatch.setattr(module, "check", fake_check)
    monkeypatch.setattr(module, "figure", lambda result, path: None)
    assert main(["--epochs", "1", "--qualities", "stored", "--device", "cpu", "--out", str(tmp_path),
                 "--set", "precision=fp32_strict", "--set", "arch_lr=6e-4"]) == 0
    assert seen["overrides"] == {"precision": "fp32_strict", "arch_lr": 6e-4}
    assert seen["tag"] == "-arch_lr-0.0006-precision-fp32_strict"  # runs with other settings never share a folder
    assert (tmp_path / "epochs1-stored-seeds0-arch_lr-0.0006-precision-fp32_strict.md").is_file()


def test_unknown_setting_is_one_clear_line(tmp_path, capsys):
    assert main(["--epochs", "1", "--qualities", "stored", "--device", "cpu", "--images", "cifar10-subset",
                 "--out", str(tmp_path), "--set", "learning_rate=0.1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "learning_rate" in err[0]
    assert not any(tmp_path.iterdir())


def test_darts_runs_its_own_section_beside_the_official_darts_run(tmp_path, nb201, one_torch_thread):
    summary = check([None], [0], 1, "cpu", tmp_path, images="cifar10-subset", overrides=TINY, progress=False,
                    method="darts")
    assert summary["method"] == "darts" and summary["section"] == "darts_nb201"
    assert [r["name"] for r in summary["runs"]] == ["darts-stored-seed0-cifar10-subset"]  # never a DrNAS folder
    assert list(summary["official"]) == ["darts"]
    # the official DARTS alpha after epoch 0: log softmax(alpha) centred per edge, from the start of its epoch 1
    assert summary["official"]["darts"]["mean_alpha"][0]["skip_connect"] == 0.0157
    # ours centred per edge the same way: the op means then sum to 0 (up to the 4 decimals kept)
    assert summary["alpha_centred_per_edge"] and abs(sum(summary["runs"][0]["epochs"][0]["mean_alpha"].values())) < 5e-4
    text = markdown(summary)
    assert text.startswith("# DARTS (first order)") and "(32.3)" in text and "| 0 | 32.3 | -0.010 | +0.016 |" in text
    assert "centred first" in text
    with pytest.raises(ConfigError, match="--method"):
        check([None], [0], 1, "cpu", tmp_path, method="enas")


def test_gdas_runs_its_own_section_and_says_no_official_log_exists(tmp_path, nb201, one_torch_thread):
    summary = check([None], [0], 1, "cpu", tmp_path, images="cifar10-subset", overrides=TINY, progress=False,
                    method="gdas")
    assert summary["section"] == "gdas_nb201" and summary["official"] == {}
    assert [r["name"] for r in summary["runs"]] == ["gdas-stored-seed0-cifar10-subset"]
    assert summary["alpha_centred_per_edge"] and abs(sum(summary["runs"][0]["epochs"][0]["mean_alpha"].values())) < 5e-4
    text = markdown(summary)
    assert text.startswith("# GDAS plain NB201 search") and "No official per-epoch log of `[gdas_nb201]` exists" in text
    assert "| train acc. % | α none |" in text and "official" not in text.split("exists")[1]


def test_centring_removes_each_edges_constant_and_nothing_else():
    """Softmax mixing ignores a constant per edge: two alphas that differ by one are the same row once centred."""
    alphas = np.arange(30, dtype=float).reshape(6, 5) / 100
    shifted = alphas + np.arange(6)[:, None]  # a different constant on every edge
    record = {"epoch": 0, "train_acc": 30.0, "argmax_test": 54.3, "sampled_test_mean": 60.0, "arch": "", "seconds": 1.0}
    plain = _epoch_row({**record, "alphas": {"cell": alphas.tolist()}})
    centred = _epoch_row({**record, "alphas": {"cell": alphas.tolist()}}, centre_alpha=True)
    assert _epoch_row({**record, "alphas": {"cell": shifted.tolist()}}, centre_alpha=True) == centred
    assert plain["mean_alpha"]["none"] == 0.125 and centred["mean_alpha"] == {
        "none": -0.02, "skip_connect": -0.01, "nor_conv_1x1": 0.0, "nor_conv_3x3": 0.01, "avg_pool_3x3": 0.02}


def test_a_summary_from_before_the_official_runs_gets_them_from_the_log():
    row = {"epoch": 0, "train_acc": 21.67, "argmax_test": 93.47, "sampled_test_mean": 80.0, "arch": "", "seconds": 1.0,
           "mean_alpha": {"none": 0.0, "skip_connect": 0.01, "nor_conv_1x1": 0.0, "nor_conv_3x3": 0.01,
                          "avg_pool_3x3": 0.0}}
    old = {"date": "then", "device": "cpu", "images": "JPEG", "section": "drnas_nb201", "overrides": {}, "epochs": 1,
           "official_train_acc": {"0": 22.4}, "runs": [{"name": "stored-seed0", "jpeg_quality": None, "seed": 0,
                                                        "epochs": [row]}]}
    text = markdown(old)
    assert "| stored | 0 | 0 | 21.7 (22.6 / 21.9) |" in text and "| 0 | 22.6 / 21.9 |" in text


def _finished_summary(method: str, section: str, date: str, seeds_tests: dict, epochs: int = 2,
                      valid: bool = True) -> dict:
    """A summary as `check` writes it, of searches of ``stage_epochs=[epochs]`` ending at the given test accuracy."""
    def row(epoch, test):
        return {"epoch": epoch, "train_acc": 50.0, "argmax_test": test, "argmax_valid": test - 3 if valid else None,
                "sampled_test_mean": 80.0, "arch": f"cell-{test}", "seconds": 1.0, "mean_alpha": {"none": 0.0}}
    return {"date": date, "device": "cpu", "method": method, "images": "JPEG", "section": section,
            "overrides": {"stage_epochs": [2]}, "epochs": epochs, "official": {},
            "runs": [{"name": f"{method}-seed{seed}", "jpeg_quality": None, "seed": seed,
                      "epochs": [row(e, 60.0 if e < epochs - 1 else test) for e in range(epochs)]}
                     for seed, test in seeds_tests.items()]}


def test_final_table_averages_the_finished_searches_once_per_seed(tmp_path):
    from reproduce.drnas_image_check import final_markdown, final_summary

    for name, summary in {
        "a": _finished_summary("drnas", "drnas_nb201", "2026-01-01", {0: 93.0}),
        "b": _finished_summary("drnas", "drnas_nb201", "2026-01-01", {1: 80.0}),
        "c": _finished_summary("drnas", "drnas_nb201", "2026-01-02", {1: 87.0}),  # seed 1 again, newer: it counts
        "0": _finished_summary("darts", "darts_nb201", "2026-01-01", {0: 54.3, 1: 54.3}),  # rows in METHODS order
        "e": _finished_summary("drnas", "drnas_nb201", "2026-01-01", {2: 94.0}, epochs=1),  # stopped after 1 of 2
    }.items():
        (tmp_path / f"{name}.json").write_text(json.dumps(summary))
    (tmp_path / "unrelated.json").write_text("[1, 2]")
    final = final_summary(tmp_path)
    drnas, darts = final["rows"]
    assert [s["seed"] for s in drnas["seeds"]] == [0, 1] and [s["test"] for s in drnas["seeds"]] == [93.0, 87.0]
    assert (drnas["test_mean"], drnas["test_std"], drnas["valid_mean"]) == (90.0, 3.0, 87.0)  # population std
    assert drnas["test_gap"] == pytest.approx(90.0 - 94.36) and darts["test_std"] == 0.0
    assert final["stopped"] == ["drnas-seed2 (1 of 2 epochs, e.json)"]
    text = final_markdown(final)
    assert ("| DrNAS | `[drnas_nb201]` with stage_epochs=[2], 2 epochs | 2 | 87.00 ± 3.00 | 90.00 ± 3.00 "
            "| 91.55 / 94.36 | -4.36 |") in text
    assert "| DARTS (1st order) | `[darts_nb201]`" in text and "`cell-87.0`" in text and "`cell-80.0`" not in text


def test_final_table_of_old_or_no_summaries_is_one_clear_line(tmp_path, capsys):
    assert main(["--final", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no summary of a finished search" in err[0]
    (tmp_path / "old.json").write_text(json.dumps(_finished_summary("gdas", "gdas_nb201", "2026-01-01", {0: 90.0},
                                                                   valid=False)))
    assert main(["--final", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "rerun its command" in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.json"]  # nothing written


def test_final_writes_table_and_figure(tmp_path):
    summary = _finished_summary("gdas", "gdas_nb201", "2026-01-01", {0: 90.0, 1: 92.0})
    (tmp_path / "s.json").write_text(json.dumps(summary))
    assert main(["--final", "--out", str(tmp_path)]) == 0
    assert "| GDAS |" in (tmp_path / "final.md").read_text() and (tmp_path / "final.png").stat().st_size > 0
    assert json.loads((tmp_path / "final.json").read_text())["rows"][0]["test_mean"] == 91.0
    assert main(["--final", "--out", str(tmp_path)]) == 0  # its own final.json is not read as a summary


def test_progressive_section_runs_across_its_stages_under_its_own_name(tmp_path, nb201, one_torch_thread):
    from reproduce.drnas_image_check import final_markdown, final_summary, write

    tiny = {**TINY, "stage_epochs": [1, 1], "arch_warmup_epochs": [0, 0]}
    summary = check([None], [0], 2, "cpu", tmp_path, images="cifar10-subset", overrides=tiny, progress=False,
                    section="drnas_nb201_progressive")
    assert summary["section"] == "drnas_nb201_progressive" and summary["official"] == {}  # the log is of plain runs
    assert summary["runs"][0]["name"] == "drnas_nb201_progressive-stored-seed0-cifar10-subset"
    assert [r["epoch"] for r in summary["runs"][0]["epochs"]] == [0, 1]  # epoch 1 is the second stage's
    assert "No official per-epoch log of `[drnas_nb201_progressive]` exists" in markdown(summary)
    write(summary, tmp_path / "progressive")
    final = final_summary(tmp_path)
    test = final["rows"][0]["seeds"][0]["test"]
    assert final["rows"][0]["label"] == "DrNAS (progressive)"
    assert "| DrNAS (progressive) | `[drnas_nb201_progressive]` with" in final_markdown(final)
    assert f"epochs | 1 | {final['rows'][0]['valid_mean']:.2f} | {test:.2f} | 91.55 / 94.36 |" in final_markdown(final)
    with pytest.raises(ConfigError, match="NB201 section"):
        check([None], [0], 1, "cpu", tmp_path, section="drnas_darts")
