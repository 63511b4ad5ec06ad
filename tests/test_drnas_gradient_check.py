"""reproduce.drnas_gradient_check: paired architecture gradients of one DrNAS checkpoint under two precisions."""
import json

import pytest

from algorithms.nn.search import device_name
from reproduce.drnas_gradient_check import RESAMPLED, gradient_check, main, markdown
from reproduce.drnas_image_check import check
from test_drnas_image_check import TINY

pytestmark = pytest.mark.data


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory, nb201):
    out = tmp_path_factory.mktemp("image_check")
    check([None], [0], 1, "cpu", out, images="cifar10-subset", overrides=TINY, progress=False)
    return out / "runs" / "stored-seed0-cifar10-subset" / "checkpoint.pt"


def test_identical_arithmetic_pairs_exactly_and_tf32_rounding_shows(tiny_checkpoint, one_torch_thread):
    # on a CPU fp32_strict is fp32: the same batch, draw and weights must give the same gradient, bit for bit
    result = gradient_check(tiny_checkpoint, ["fp32", "fp32_strict", "tf32_emulated"], 3, "cpu", progress=False)
    rows = {row["setting"]: row for row in result["rows"]}
    assert list(rows) == ["fp32", "fp32_strict", "tf32_emulated", RESAMPLED]
    strict = rows["fp32_strict"]
    assert all(m == 0 and s == 0 for m, s in strict["paired_difference"].values())
    assert strict["cosine_alpha"]["min"] == pytest.approx(1, abs=1e-12)
    assert strict["cosine_weights"]["min"] == pytest.approx(1, abs=1e-12)
    assert strict["mean_grad"] == rows["fp32"]["mean_grad"]
    # TF32 rounding changes the gradients a little; another Dirichlet draw changes them more
    tf32, redraw = rows["tf32_emulated"], rows[RESAMPLED]
    assert 0.9 < tf32["cosine_alpha"]["min"] < 1 and 0.9 < tf32["cosine_weights"]["min"] < 1
    assert redraw["cosine_alpha"]["mean"] < 1
    assert result["epochs_done"] == 1 and result["batches"] == 3
    assert "| tf32_emulated |" in markdown(result)


def test_main_writes_json_and_markdown(tiny_checkpoint, tmp_path, one_torch_thread, capsys):
    assert main([str(tiny_checkpoint), "--batches", "2", "--device", "cpu", "--out", str(tmp_path)]) == 0
    stem = tmp_path / "stored-seed0-cifar10-subset-epochs1-fp32-tf32_emulated-cpu"
    assert json.loads(stem.with_suffix(".json").read_text())["rows"][1]["setting"] == "tf32_emulated"
    assert "paired difference" in stem.with_suffix(".md").read_text()


@pytest.mark.parametrize("args,message", [
    (["missing.pt"], "no such checkpoint"),
    (["{ckpt}", "--precisions", "fp32"], "two or more"),
    (["{ckpt}", "--precisions", "fp32,fp16"], "each is a precision"),
    (["{ckpt}", "--settings", "fp32@cpu,fp32@cpu"], "different"),
    (["{ckpt}", "--settings", "fp32@cpu,fp32@tpu"], "cpu, cuda or cuda:N"),
    (["{ckpt}", "--batches", "1"], "--batches"),
])
def test_bad_input_is_one_clear_line(tiny_checkpoint, tmp_path, capsys, args, message):
    argv = [a.replace("{ckpt}", str(tiny_checkpoint)) for a in args] + ["--device", "cpu", "--out", str(tmp_path)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not any(tmp_path.iterdir())


def test_a_file_that_is_no_checkpoint_is_refused(tmp_path, capsys):
    bogus = tmp_path / "checkpoint.pt"
    bogus.write_bytes(b"not a checkpoint")
    assert main([str(bogus), "--device", "cpu", "--out", str(tmp_path / "out")]) == 2
    assert "checkpoint" in capsys.readouterr().err


def test_settings_on_devices_pair_their_draws_and_name_the_files(tiny_checkpoint, tmp_path, one_torch_thread):
    """fp32@cpu against fp32 on the default (cpu) device is the same arithmetic with the same draw: bit for bit
    the same gradients (on a GPU machine, fp32@cuda against fp32@cpu measures the GPU's arithmetic)."""
    argv = [str(tiny_checkpoint), "--settings", "fp32@cpu,fp32", "--batches", "2", "--device", "cpu",
            "--out", str(tmp_path)]
    assert main(argv) == 0
    result = json.loads((tmp_path / "stored-seed0-cifar10-subset-epochs1-fp32_on_cpu-fp32-cpu.json").read_text())
    same = result["rows"][1]
    assert same["setting"] == "fp32" and all(m == 0 for m, _ in same["paired_difference"].values())
    assert result["settings"]["fp32@cpu"] == {"precision": "fp32", "device": device_name("cpu"),
                                              "cuda_pool_bug_emulated": False}
    assert main(argv[:1] + ["--settings", "fp32@cpu,tf32_emulated@cpu"] + argv[3:]) == 0
    assert (tmp_path / "stored-seed0-cifar10-subset-epochs1-fp32_on_cpu-tf32_emulated_on_cpu.md").is_file()


def test_the_pool_bug_setting_changes_the_gradient(tiny_checkpoint, tmp_path, one_torch_thread):
    argv = [str(tiny_checkpoint), "--settings", "fp32,fp32+pool_bug", "--batches", "2", "--device", "cpu",
            "--out", str(tmp_path)]
    assert main(argv) == 0
    result = json.loads((tmp_path / "stored-seed0-cifar10-subset-epochs1-fp32-fp32_pool_bug-cpu.json").read_text())
    assert result["settings"]["fp32+pool_bug"]["cuda_pool_bug_emulated"] is True
    bugged = result["rows"][1]
    assert bugged["setting"] == "fp32+pool_bug" and bugged["cosine_weights"]["mean"] < 1 - 1e-6


def test_a_checkpoint_from_another_device_is_checked(tiny_checkpoint, tmp_path, one_torch_thread):
    """A GPU run's checkpoint holds a CUDA generator state (16 bytes), which a CPU generator refuses; the check
    draws from its own CPU generators, so the state is not needed and such a checkpoint works."""
    import torch

    state = torch.load(tiny_checkpoint, map_location="cpu", weights_only=True)
    state["search"]["sample_generator"] = torch.zeros(16, dtype=torch.uint8)  # the size of a CUDA generator state
    path = tmp_path / "gpu-run" / "checkpoint.pt"
    path.parent.mkdir()
    torch.save(state, path)
    result = gradient_check(path, ["fp32@cpu", "fp32_strict"], 2, "cpu", progress=False)
    assert all(m == 0 for m, _ in result["rows"][1]["paired_difference"].values())
