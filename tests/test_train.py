"""Training from scratch: the config file, exact resume after a stop, and refusing a foreign checkpoint."""
from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch

from algorithms.nn.data import ImageArrays
from algorithms.nn.train import load_train_config, register, resolve_genotype, train_network
from nasrepro.errors import CheckpointError, ConfigError

# smaller than [quick]: 8-px images, 3 layers, a few batches, so two runs take seconds
TINY = dict(dataset="synthetic", epochs=2, batch_size=16, eval_batch_size=32, init_channels=2, layers=3,
            cutout=4, crop_padding=2, resize_to=0, train_subset=40, test_subset=0)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def arrays() -> ImageArrays:
    rng = np.random.default_rng(0)
    return ImageArrays("cifar10", rng.integers(0, 256, (48, 8, 8, 3), dtype=np.uint8), rng.integers(0, 10, 48),
                       rng.integers(0, 256, (20, 8, 8, 3), dtype=np.uint8), rng.integers(0, 10, 20), 10,
                       (0.49, 0.48, 0.45), (0.25, 0.24, 0.26))


def test_config_sections_hold_the_paper_protocol():
    full = load_train_config("full")
    assert (full.epochs, full.batch_size, full.learning_rate, full.init_channels, full.layers) == \
        (600, 96, 0.025, 36, 20)
    assert (full.cutout, full.drop_path_prob, full.auxiliary_weight, full.weight_decay, full.grad_clip) == \
        (16, 0.3, 0.4, 3e-4, 5.0)
    quick = load_train_config("quick")
    assert quick.resize_to == 16 and quick.epochs <= 2
    resolve_genotype(full.genotype)
    with pytest.raises(ConfigError, match="unknown key"):
        load_train_config("quick", {"learning_rte": 0.1})
    with pytest.raises(ConfigError):
        load_train_config("meta")
    with pytest.raises(ConfigError):
        load_train_config("quick", {"epochs": "ten"})
    with pytest.raises(ConfigError, match="unknown genotype"):
        resolve_genotype("NoSuchNet")


def test_stopped_and_resumed_run_equals_uninterrupted(tmp_path, arrays):
    config = load_train_config("quick", TINY)
    whole = train_network(config, tmp_path / "whole", seed=3, data=arrays, progress=False)
    assert [row["epoch"] for row in whole.history] == [1, 2]

    first = train_network(config, tmp_path / "resumed", seed=3, data=arrays, progress=False, max_epochs=1)
    assert len(first.history) == 1  # "killed" after epoch 1: only its checkpoint is left
    resumed = train_network(config, tmp_path / "resumed", seed=3, data=arrays, progress=False)
    for a, b in zip(whole.history, resumed.history, strict=True):
        assert {k: v for k, v in a.items() if k != "seconds"} == {k: v for k, v in b.items() if k != "seconds"}
    weights_a = torch.load(tmp_path / "whole" / "checkpoint.pt", weights_only=True)["model"]
    weights_b = torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=True)["model"]
    assert all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a)

    # the records: CSV and JSON with one row per epoch, and the resolved config
    csv_lines = (tmp_path / "resumed" / "history.csv").read_text().splitlines()
    assert csv_lines[0].startswith("epoch,lr,drop_path_prob,train_loss") and len(csv_lines) == 3
    assert len(json.loads((tmp_path / "resumed" / "history.json").read_text())) == 2
    saved = json.loads((tmp_path / "resumed" / "config.json").read_text())
    assert saved["config"]["learning_rate"] == config.learning_rate and saved["seed"] == 3
    # drop-path rises linearly from 0 and the cosine schedule starts at the configured lr
    assert whole.history[0]["drop_path_prob"] == 0.0 and whole.history[1]["drop_path_prob"] > 0
    assert whole.history[0]["lr"] == config.learning_rate > whole.history[1]["lr"]

    # a different seed is a different run
    other = train_network(config, tmp_path / "other", seed=4, data=arrays, progress=False, max_epochs=1)
    assert other.history[0]["train_loss"] != whole.history[0]["train_loss"]


def test_checkpoint_of_another_config_is_refused_and_kept(tmp_path, arrays):
    config = load_train_config("quick", {**TINY, "epochs": 1})
    train_network(config, tmp_path, seed=0, data=arrays, progress=False)
    checkpoint = (tmp_path / "checkpoint.pt").read_bytes()
    changed = load_train_config("quick", {**TINY, "epochs": 1, "learning_rate": 0.1})
    with pytest.raises(CheckpointError, match="learning_rate"):
        train_network(changed, tmp_path, seed=0, data=arrays, progress=False)
    with pytest.raises(CheckpointError, match="seed"):
        train_network(config, tmp_path, seed=1, data=arrays, progress=False)
    fewer = ImageArrays(arrays.name, arrays.x_train[:30], arrays.y_train[:30], arrays.x_test, arrays.y_test,
                        arrays.num_classes, arrays.mean, arrays.std)
    with pytest.raises(CheckpointError, match="data"):
        train_network(config, tmp_path, seed=0, data=fewer, progress=False)
    assert (tmp_path / "checkpoint.pt").read_bytes() == checkpoint

    (tmp_path / "checkpoint.pt").write_bytes(checkpoint[:100])
    with pytest.raises(CheckpointError, match="unreadable") as info:
        train_network(config, tmp_path, seed=0, data=arrays, progress=False)
    assert "\n" not in str(info.value)


def test_command_line_parses_and_reports_bad_scale_as_config_error(tmp_path):
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["train-eval", str(tmp_path / "run"), "--scale", "huge", "--seed", "2"])
    assert args.seed == 2 and args.max_epochs is None
    with pytest.raises(ConfigError, match="huge"):
        args.func(args)
    assert not (tmp_path / "run").exists()


# -- fit_classifier (brief trainings) -------------------------------------------------------------------
class _Linear(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(3 * 8 * 8, 10)

    def forward(self, x):
        return self.fc(x.flatten(1)), None


def _brief(arrays, monkeypatch, grad_clip, **options):
    from algorithms.nn.data import ImageBatches
    from algorithms.nn.train import BriefTraining, fit_classifier

    created = []
    real_sgd = torch.optim.SGD

    def recording_sgd(*args, **kwargs):
        created.append(kwargs)
        return real_sgd(*args, **kwargs)

    monkeypatch.setattr(torch.optim, "SGD", recording_sgd)
    torch.manual_seed(0)
    model = _Linear()
    before = model.fc.weight.detach().clone()
    batches = ImageBatches(arrays.x_train[:, :8, :8], arrays.y_train, batch_size=8, mean=arrays.mean,
                           std=arrays.std, generator=torch.Generator().manual_seed(0))
    schedule = BriefTraining(epochs=1, learning_rate=0.1, lr_min=0.0, momentum=0.9, weight_decay=0.0,
                             grad_clip=grad_clip)
    fit_classifier(model, batches, {}, schedule, **options)
    return created[0], (model.fc.weight.detach() - before).abs().max().item()


def test_fit_classifier_passes_nesterov_and_grad_clip_zero_means_no_clipping(arrays, monkeypatch):
    sgd, moved = _brief(arrays, monkeypatch, grad_clip=0.0, nesterov=True)
    assert sgd["nesterov"] is True and moved > 1e-3  # clipping to norm 0 would leave the weights where they were
    sgd, tiny = _brief(arrays, monkeypatch, grad_clip=1e-6)
    assert sgd["nesterov"] is False and tiny < moved / 100
