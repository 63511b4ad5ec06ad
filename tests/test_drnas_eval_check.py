"""reproduce.drnas_eval_check: DARTS-space cells trained from scratch at a reduced size, side by side."""
import json

import pytest

from algorithms.nn.train import load_train_config, resolve_genotype
from nasrepro.errors import ConfigError
from reproduce.drnas_eval_check import main, resolve_cells, run_name

OURS = resolve_genotype("DARTS_V2")  # stands for a searched genotype in the summary fixture


def _search_summary(path, finished: dict[int, str], unfinished: tuple[int, ...] = ()) -> str:
    """A reproduce.drnas_darts_space_check summary with the given final genotypes per seed."""
    runs = [{"seed": seed, "finished": True, "epochs": [{"epoch": 0, "arch": "x"}, {"epoch": 1, "arch": arch}]}
            for seed, arch in finished.items()]
    runs += [{"seed": seed, "finished": False, "epochs": [{"epoch": 0, "arch": "y"}]} for seed in unfinished]
    path.write_text(json.dumps({"runs": runs}))
    return str(path)


def test_cells_by_published_name_search_seed_and_random_draw(tmp_path):
    search = _search_summary(tmp_path / "search.json", {0: str(OURS)})
    cells = resolve_cells(["DrNAS_cifar10", "search:0", "random:3"], tmp_path / "search.json")
    assert list(cells) == ["DrNAS_cifar10", "ours, search seed 0", "random cell 3"]
    assert resolve_genotype(cells["ours, search seed 0"]) == OURS  # the search's last epoch's genotype
    assert cells["DrNAS_cifar10"] == str(resolve_genotype("DrNAS_cifar10"))
    # a random cell is a function of its seed alone
    assert resolve_cells(["random:3"])["random cell 3"] == cells["random cell 3"]
    assert resolve_cells(["random:4"])["random cell 4"] != cells["random cell 3"]
    assert search  # the fixture file exists


@pytest.mark.parametrize("names, search, message", [
    (["DrNAS_cifar11"], None, "unknown genotype 'DrNAS_cifar11'"),
    (["random:x"], None, "expected random:N"),
    (["search:0"], None, "needs --search"),
    (["search:2"], "summary", "no finished search of seed 2 (finished: [0])"),
    (["search:0"], "garbage", "not a readable DARTS-space search summary"),
])
def test_bad_cell_names_are_one_line(tmp_path, names, search, message):
    path = None
    if search == "summary":
        path = tmp_path / "s.json"
        _search_summary(path, {0: str(OURS)}, unfinished=(2,))
    elif search == "garbage":
        path = tmp_path / "s.json"
        path.write_text("{not json")
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        resolve_cells(names, path)


def test_run_names_are_file_safe_and_tell_scale_cell_and_seed():
    assert run_name("ours, search seed 0", 1, "reduced") == "reduced-ours_search_seed_0-seed1"
    assert run_name("DrNAS_cifar10", 0, "quick") == "quick-DrNAS_cifar10-seed0"
    assert run_name("DARTS_V2", 0, "reduced", {"drop_path_prob": 0.0}) == "reduced-DARTS_V2-seed0-drop_path_prob-0.0"


def test_reduced_section_is_the_protocol_at_a_smaller_size():
    full, reduced = load_train_config("full"), load_train_config("reduced")
    same = ("batch_size", "learning_rate", "lr_min", "momentum", "weight_decay", "grad_clip", "auxiliary_weight",
            "drop_path_prob", "dataset")
    assert all(getattr(full, k) == getattr(reduced, k) for k in same)
    assert reduced.resize_to == 16 and reduced.cutout * 2 == full.cutout and reduced.crop_padding * 2 == full.crop_padding
    assert reduced.init_channels < full.init_channels and reduced.layers < full.layers
    assert reduced.epochs < full.epochs and reduced.test_subset == 0  # scored on the whole test set


@pytest.mark.data
def test_trains_each_cell_resumes_finished_ones_and_refuses_a_changed_cell(data_root, tmp_path, capsys):
    out = tmp_path / "eval"
    search = _search_summary(tmp_path / "search.json", {0: str(OURS)})
    args = ["--scale", "quick", "--cells", "search:0,random:1", "--seeds", "0", "--search", search,
            "--workers", "1", "--set", "epochs=1", "--out", str(out)]
    assert main(args) == 0
    stem = out / "quick-ourssearchseed0-randomcell1-seeds0-epochs-1"  # a changed setting names its files
    summary = json.loads(stem.with_name(stem.name + ".json").read_text())
    epochs = 1
    assert summary["config"]["epochs"] == 1 and summary["overrides"] == {"epochs": 1}
    assert (out / "runs" / "quick-random_cell_1-seed0-epochs-1" / "checkpoint.pt").is_file()
    assert [row["cell"] for row in summary["cells"]] == ["ours, search seed 0", "random cell 1"]
    for row in summary["cells"]:
        (run,) = row["runs"]
        assert run["finished"] and len(run["history"]) == epochs and row["finished_seeds"] == 1
        assert row["test_acc_mean"] == pytest.approx(run["history"][-1]["test_acc"], abs=0.005)
        assert row["test_acc_std"] == 0.0 and run["params_mb"] > 0
    text = stem.with_name(stem.name + ".md").read_text()
    assert "| ours, search seed 0 |" in text and "training noise is not measured" in text
    assert stem.with_name(stem.name + ".png").stat().st_size > 0

    # a rerun reloads the finished trainings: the same histories
    assert main(args) == 0
    again = json.loads(stem.with_name(stem.name + ".json").read_text())
    assert [r["runs"] for r in again["cells"]] == [r["runs"] for r in summary["cells"]]

    # the search summary now names another cell for seed 0: its run folder holds the old cell's checkpoint
    _search_summary(tmp_path / "search.json", {0: str(resolve_genotype("DrNAS_cifar10"))})
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and "belongs to another run (differs in: genotype)" in err[-1]
    assert json.loads(stem.with_name(stem.name + ".json").read_text()) == again  # the summary is kept


def test_bad_arguments_exit_2_with_one_line(tmp_path, capsys):
    for args in (["--workers", "0"], ["--device", "tpu"], ["--seeds", "a"], ["--cells", " , "],
                 ["--cells", "nope"], ["--set", "epoch=3"], ["--set", "genotype=DARTS_V2"], ["--scale", "huge"]):
        assert main([*args, "--out", str(tmp_path)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: ")
    assert not any(tmp_path.iterdir())  # nothing written
