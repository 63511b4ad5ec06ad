"""reproduce.nb201_training_check: NB201 cells trained with NB201's recipe, beside the benchmark's accuracy."""
import json

import numpy as np
import pytest
import torch

from benchmarks.nb201 import NB201Space
from reproduce.nb201_training_check import DEFAULT_CELLS, NB201CellNetwork, gap_to_table, main, reencode_jpeg

pytestmark = pytest.mark.data


def _trained_parameters(network: torch.nn.Module) -> int:
    network.zero_grad(set_to_none=True)
    logits, _ = network(torch.randn(2, 3, 32, 32))
    logits.sum().backward()
    return sum(p.numel() for p in network.parameters() if p.grad is not None)


def test_cell_network_is_nb201s_network_by_parameter_count(nb201):
    """Every parameter the cell's forward uses, counted, equals NB201's own count for that cell (MB = 1e6),
    for the default cells and 3 random ones (a missing or extra op, BN affine or not, would change it)."""
    space = NB201Space()
    rng = np.random.default_rng(0)
    cells = [space.parse(c) for c in DEFAULT_CELLS] + [space.sample(rng) for _ in range(3)]
    for arch in cells:
        expected = nb201.query(arch, "cifar10", metric="params", split=None)
        assert _trained_parameters(NB201CellNetwork(arch)) / 1e6 == pytest.approx(expected, abs=1e-6), arch


def test_none_edges_add_nothing():
    """An all-none cell passes nothing: the logits do not depend on the input."""
    network = NB201CellNetwork(NB201Space().parse("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|")).eval()
    a, _ = network(torch.randn(2, 3, 32, 32))
    b, _ = network(torch.randn(2, 3, 32, 32))
    assert torch.allclose(a, b)


def test_check_writes_our_accuracy_beside_the_table(tmp_path, nb201, one_torch_thread, capsys):
    cell = DEFAULT_CELLS[2]  # all pools: the cheapest cell to train
    assert main(["--cells", cell, "--epochs", "1", "--images", "cifar10-subset", "--train-images", "512",
                 "--device", "cpu", "--out", str(tmp_path)]) == 0
    [written] = tmp_path.glob("epochs1-cells-*.json")  # named cells: a file of their own
    result = json.loads(written.read_text())
    row = result["cells"][0]
    arch = NB201Space().parse(cell)
    assert row["nb201_test"]["12"] == pytest.approx(nb201.query(arch, "cifar10", split="test", epoch=12), abs=0.01)
    assert 0.0 <= row["ours_test"] <= 100.0 and len(row["history"]) == 1
    assert row["test_images"] == 1000 and "gap_pp" not in row  # the subset's 1,000 test images; 1 epoch has no table value
    assert result["recipe"]["nesterov"] and not result["recipe"]["bf16"] and "JPEG" in result["images"]
    assert result["train_images"] == 512
    assert "| 1 |" in written.with_suffix(".md").read_text()


def test_reencoding_loses_more_at_lower_quality_and_keeps_the_layout():
    rng = np.random.default_rng(0)
    smooth = np.cumsum(rng.integers(-8, 9, size=(4, 32, 32, 3)), axis=2)  # image-like: neighbours correlate
    images = np.clip(smooth - smooth.min() + 40, 0, 255).astype(np.uint8)
    errors = {}
    for quality in (95, 75, 25):
        out = reencode_jpeg(images, quality)
        assert out.shape == images.shape and out.dtype == np.uint8
        errors[quality] = np.abs(out.astype(int) - images).mean()
    assert 0 < errors[95] < errors[75] < errors[25]


def test_seeds_and_reencodings_get_files_of_their_own(tmp_path, nb201, one_torch_thread, monkeypatch):
    """File names and records per seed and JPEG quality; the training itself is faked (the test above trains),
    which saves half a minute of the suite."""
    from algorithms.nn import train

    trained = []
    monkeypatch.setattr(train, "fit_classifier", lambda model, batches, evaluations, schedule, **kw: trained.append(
        batches.num_samples) or {"test_acc": 10.0, "history": [{"epoch": 0}]})
    cell = DEFAULT_CELLS[2]
    common = ["--cells", cell, "--epochs", "1", "--images", "cifar10-subset", "--train-images", "256", "--device", "cpu",
              "--out", str(tmp_path)]
    assert main(common) == 0
    assert main([*common, "--seed", "1", "--jpeg-quality", "25"]) == 0
    written = sorted(tmp_path.glob("*.json"), key=lambda path: len(path.name))
    assert len(written) == 2 and written[1].name.endswith("-cifar10-subset-seed1-jpeg25-train256.json")
    plain, reencoded = written
    result = json.loads(reencoded.read_text())
    assert result["jpeg_quality"] == 25 and "quality 25" in result["images"] and result["seed"] == 1
    assert json.loads(plain.read_text())["jpeg_quality"] is None
    assert trained == [256, 256]


def test_gap_only_against_the_whole_cifar10_test_split():
    table = {12: 88.66, 200: 94.36}
    assert gap_to_table(90.0, table, 12, 10_000) == pytest.approx(1.34)
    assert gap_to_table(90.0, table, 12, 10) is None  # a trimmed test set compares other images
    assert gap_to_table(90.0, table, 5, 10_000) is None  # no benchmark value after 5 epochs


@pytest.mark.parametrize("args,message", [
    (["--cells", "|conv~0|"], "conv"),
    (["--epochs", "0"], "--epochs"),
    (["--jpeg-quality", "0"], "--jpeg-quality"),
    pytest.param(["--device", "cuda:0"], "no CUDA GPU",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, args, message):
    assert main([*args, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and message in err[0]
    assert not any(tmp_path.iterdir())


def test_other_datasets_are_refused_by_name(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:  # argparse: usage and one error line
        main(["--images", "cifar100", "--out", str(tmp_path)])
    assert exit_info.value.code == 2 and "cifar100" in capsys.readouterr().err
