"""DrNAS / DARTS / GDAS on the supernet stack: sampling, regularisers, config, checkpoint/resume."""
from __future__ import annotations

import tomllib
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from scipy import special

from algorithms.drnas import DrNAS, concentration, dirichlet_rsample
from algorithms import CONFIG_DIR
from algorithms.nn.search import device_name, load_hparams, make_search, run_search, search_data
from algorithms.nn.train import resolve_genotype
from algorithms.oneshot_baselines import DARTS, GDAS
from nasrepro.errors import CheckpointError, ConfigError

TINY = dict(channels=4, cells=1, image_size=8, train_subset=0, batch_size=16, precision="fp32",
            channels_last=False, sample_archs=10)


def tiny_arrays(n: int = 64, side: int = 8, seed: int = 0):
    rng = np.random.default_rng(seed)
    return SimpleNamespace(x_train=rng.integers(0, 256, (n, side, side, 3), dtype=np.uint8),
                           y_train=rng.integers(0, 10, n).astype(np.int64),
                           mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))


def tiny_search(cls=DrNAS, section="drnas_nb201", seed=0, **overrides):
    hparams = load_hparams("drnas", section, {**TINY, "stage_epochs": [2], **overrides})
    search = make_search(cls, hparams, seed)
    search.adapt_search_space(hparams["space"], "cifar10", num_classes=10)
    return search, hparams


def alpha_after_steps(steps: int = 3, **overrides) -> torch.Tensor:
    """The cell's α after ``steps`` steps of a tiny search: the same seeds and batches for any ``overrides``, so
    two settings' results are paired."""
    search, _ = tiny_search(**overrides)
    train, valid = search_data(search, tiny_arrays(), 0)
    search.new_epoch(0)
    for _ in range(steps):
        assert torch.isfinite(search.step(train.next_batch(), valid.next_batch())["train_loss"])
    return search.alphas["cell"].detach().clone()


# -- Dirichlet sampling -------------------------------------------------------------------------------------
def test_dirichlet_samples_lie_on_the_simplex_with_the_right_shape():
    g = torch.Generator().manual_seed(0)
    alpha = 0.5 * torch.randn(6, 5)
    x = dirichlet_rsample(concentration(alpha), g)
    assert x.shape == (6, 5)
    assert (x >= 0).all() and torch.allclose(x.sum(-1), torch.ones(6))


def test_dirichlet_samples_follow_the_concentration():
    g = torch.Generator().manual_seed(0)
    conc = torch.tensor([[8.0, 1.0, 1.0]]).expand(4000, 3).contiguous()
    mean = dirichlet_rsample(conc, g).mean(0)
    assert torch.allclose(mean, torch.tensor([0.8, 0.1, 0.1]), atol=0.01)


def test_pathwise_gradient_reaches_alpha_and_matches_the_beta_cdf_derivative():
    # two ops: x0 ~ Beta(a, b); implicit reparameterisation gives dx0/da = -(dI_x(a,b)/da) / (dI_x(a,b)/dx)
    g = torch.Generator().manual_seed(3)
    alpha = torch.tensor([[0.3, -0.2]], dtype=torch.float64, requires_grad=True)
    conc = concentration(alpha)
    x = dirichlet_rsample(conc, g)
    grad_conc = torch.autograd.grad(x[0, 0], conc, retain_graph=True)[0][0, 0].item()
    a, b, x0, h = conc[0, 0].item(), conc[0, 1].item(), x[0, 0].item(), 1e-6
    dI_da = (special.betainc(a + h, b, x0) - special.betainc(a - h, b, x0)) / (2 * h)
    dI_dx = x0 ** (a - 1) * (1 - x0) ** (b - 1) / special.beta(a, b)
    assert grad_conc == pytest.approx(-dI_da / dI_dx, rel=1e-3)
    x[0, 0].backward()
    assert alpha.grad is not None and alpha.grad.abs().sum() > 0


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_the_gpu_dirichlet_sampler_and_its_gradient_are_the_cpus():
    """The search draws its mixing weights on the GPU (CUDA's gamma sampler, Philox streams): each op's marginal
    must follow its Beta law there as on the CPU (KS test), consecutive draws (one call each, as the search
    makes them) must be uncorrelated, the pathwise gradient must equal the CPU's for the same sample, and a CPU
    generator must give a GPU search the CPU's draws (reproduce.drnas_gradient_check pairs devices that way)."""
    from scipy import stats

    conc = concentration(0.3 * torch.randn(6, 5, generator=torch.Generator().manual_seed(0)))
    n = 20000
    draws = {}
    for device in ("cpu", "cuda"):
        g = torch.Generator(device=device).manual_seed(1)
        c = conc.to(device)
        draws[device] = torch.stack([dirichlet_rsample(c, g) for _ in range(n)]).double().cpu()  # n x 6 x 5
    total = conc.sum(-1, keepdim=True).expand_as(conc)
    for device, x in draws.items():
        p_values = [stats.kstest(x[:, e, o].numpy(), stats.beta(float(conc[e, o]), float(total[e, o] - conc[e, o])).cdf
                                 ).pvalue for e in range(6) for o in range(5)]
        assert min(p_values) > 1e-4, (device, min(p_values))
        lagged = [np.corrcoef(x[:-1, e, o].numpy(), x[1:, e, o].numpy())[0, 1] for e in range(6) for o in range(5)]
        assert max(abs(r) for r in lagged) < 5 / np.sqrt(n), (device, max(lagged, key=abs))
    sample = draws["cpu"][:50].float()
    grads = [torch._dirichlet_grad(sample.to(d), conc.expand_as(sample).contiguous().to(d),
                                   total.expand_as(sample).contiguous().to(d)).cpu() for d in ("cpu", "cuda")]
    torch.testing.assert_close(grads[1], grads[0], rtol=1e-4, atol=1e-6)
    on_cpu = dirichlet_rsample(conc, torch.Generator().manual_seed(5))
    on_gpu = dirichlet_rsample(conc.cuda().requires_grad_(), torch.Generator().manual_seed(5))
    assert on_gpu.device.type == "cuda" and torch.equal(on_gpu.cpu(), on_cpu)
    on_gpu.sum().backward()  # the pathwise gradient runs on the GPU from a sample drawn on the CPU


def test_one_search_step_moves_alpha():
    search, _ = tiny_search()
    train, valid = search_data(search, tiny_arrays(), 0)
    before = search.alphas["cell"].detach().clone()
    search.new_epoch(0)
    out = search.step(train.next_batch(), valid.next_batch())
    assert {"train_loss", "valid_loss"} <= set(out)
    assert not torch.equal(before, search.alphas["cell"].detach())


def test_precision_choices(monkeypatch):
    search, _ = tiny_search(precision="fp32_strict")  # TF32 off on a GPU; on the CPU the same as fp32
    train, valid = search_data(search, tiny_arrays(), 0)
    search.new_epoch(0)
    assert torch.isfinite(search.step(train.next_batch(), valid.next_batch())["train_loss"])
    with pytest.raises(ConfigError, match="fp32_strict"):
        tiny_search(precision="fp64")


# -- regularisers -----------------------------------------------------------------------------------------
def test_l2_and_kl_regularisers_switch():
    l2, _ = tiny_search(reg_type="l2", reg_scale=1e-3)
    kl, _ = tiny_search(reg_type="kl", reg_scale=1e-3)
    assert l2.arch_optimizer.param_groups[0]["weight_decay"] == 1e-3 and l2.arch_regulariser() == 0.0
    assert kl.arch_optimizer.param_groups[0]["weight_decay"] == 0.0
    reg0 = kl.arch_regulariser()
    assert reg0.requires_grad
    with torch.no_grad():
        kl.alphas["cell"].add_(1.0)
    assert float(kl.arch_regulariser().detach()) != pytest.approx(float(reg0.detach()))
    with pytest.raises(ConfigError):
        tiny_search(reg_type="l1")


# -- config ---------------------------------------------------------------------------------------------
def test_every_config_section_builds_and_meta_is_documented():
    with open(CONFIG_DIR / "drnas.toml", "rb") as fh:
        table = tomllib.load(fh)
    assert table["meta"]["source"] and table["meta"]["known_deviations"]
    classes = {"drnas": DrNAS, "darts": DARTS, "gdas": GDAS}
    sections = [s for s in table if s not in ("meta", "nb201_table") and not s.startswith("scale_")]
    assert {"drnas_nb201", "darts_nb201", "gdas_nb201", "drnas_darts"} <= set(sections)
    for section in sections:
        make_search(classes[section.split("_")[0]], load_hparams("drnas", section), 0)
    # the table's section per method, with every scale's overrides, builds too
    from reproduce.papers.drnas import ROWS, nb201_overrides
    assert set(table["nb201_table"]) == set(ROWS)
    for row, section in table["nb201_table"].items():
        for scale in ("quick", "full"):
            make_search(classes[ROWS[row][1]], load_hparams("drnas", section, nb201_overrides(scale, section)), 0)
    with pytest.raises(ConfigError, match="unknown"):
        make_search(DrNAS, load_hparams("drnas", "drnas_nb201", {"learning_rate": 0.1}), 0)


@pytest.mark.parametrize("section,channels,error", [
    ("drnas_nb201_progressive", 16, None), ("drnas_nb201_progressive", 10, "do not split into partial_k 4"),
    ("drnas_darts", 36, None), ("drnas_darts", 24, None), ("drnas_darts", 16, "do not split into partial_k 6"),
    ("drnas_darts", 30, "do not split into partial_k 4")])  # the second stage's K
def test_channels_that_partial_channels_cannot_split_are_a_config_error(section, channels, error):
    """Caught when the search is configured, as one line, not as a shape error inside a layer."""
    hparams = load_hparams("drnas", section, {"channels": channels})
    if error is None:
        make_search(DrNAS, hparams, 0)
    else:
        with pytest.raises(ConfigError, match=error):
            make_search(DrNAS, hparams, 0)


# -- checkpoint / resume --------------------------------------------------------------------------------
@pytest.mark.parametrize("cls,section,overrides", [
    (DrNAS, "drnas_nb201", dict(stage_epochs=[1, 1], partial_k=[2, 1], num_keep=[5, 3], arch_warmup_epochs=[0, 0],
                                fused_cells=False)),
    (DrNAS, "drnas_nb201", dict(stage_epochs=[1, 1], partial_k=[2, 1], num_keep=[5, 3], arch_warmup_epochs=[0, 0],
                                fused_cells=True)),
    (DrNAS, "drnas_nb201", dict(stage_epochs=[1, 1], partial_k=[2, 1], num_keep=[5, 3], arch_warmup_epochs=[0, 0],
                                fused_cells=[False, True])),
    (DrNAS, "drnas_nb201", dict(stage_epochs=[1, 2], partial_k=[2, 1], num_keep=[5, 3], arch_warmup_epochs=[0, 0],
                                fused_cells=True, stage_lr="restart")),  # resumed at the stage change, then a step
    (DrNAS, "drnas_nb201", dict(stage_epochs=[2])),  # the plain search with the fused cell
    (GDAS, "gdas_nb201", {}),
])
def test_resume_is_exact(tmp_path, cls, section, overrides):
    def run(out, stop=None, fresh=True):
        search, hparams = tiny_search(cls, section, **overrides)
        train, valid = search_data(search, tiny_arrays(), 0)
        identity = {"algorithm": cls.name, "hparams": hparams, "seed": 0}
        result = run_search(search, train, valid, out, identity, stop_after_epochs=stop, progress=False)
        return search, result

    full, full_result = run(tmp_path / "full")
    # stop before the last epoch: the two-stage cases resume at or after their stage change
    run(tmp_path / "split", stop=sum(overrides.get("stage_epochs", [2])) - 1)
    resumed, resumed_result = run(tmp_path / "split")
    for kind in full.alphas:
        assert torch.equal(full.alphas[kind], resumed.alphas[kind])
    full_state, resumed_state = full.model.state_dict(), resumed.model.state_dict()
    assert full_state.keys() == resumed_state.keys()
    for name in full_state:
        assert torch.equal(full_state[name], resumed_state[name]), name
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in full_result["history"]]
    assert strip == [{k: v for k, v in r.items() if k != "seconds"} for r in resumed_result["history"]]
    assert full_result["final_architecture"] == resumed_result["final_architecture"]


def test_checkpoint_of_another_config_is_refused(tmp_path):
    search, hparams = tiny_search()
    train, valid = search_data(search, tiny_arrays(), 0)
    run_search(search, train, valid, tmp_path, {"hparams": hparams, "seed": 0}, stop_after_epochs=1, progress=False)
    other, other_hparams = tiny_search(arch_lr=1e-2)
    train, valid = search_data(other, tiny_arrays(), 0)
    with pytest.raises(CheckpointError, match="arch_lr|hparams"):
        run_search(other, train, valid, tmp_path, {"hparams": other_hparams, "seed": 0}, progress=False)


def one_epoch_checkpoint(out) -> dict:
    """The checkpoint (as a dict, to edit and save back) of a tiny search stopped after one epoch in ``out``."""
    search, hparams = tiny_search()
    train, valid = search_data(search, tiny_arrays(), 0)
    run_search(search, train, valid, out, {"hparams": hparams, "seed": 0}, stop_after_epochs=1, progress=False)
    return torch.load(out / "checkpoint.pt", weights_only=False)


def resume_tiny_search(out):
    """The same tiny search resumed from ``out``'s checkpoint to its end: (search, result)."""
    search, hparams = tiny_search()
    train, valid = search_data(search, tiny_arrays(), 0)
    return search, run_search(search, train, valid, out, {"hparams": hparams, "seed": 0}, progress=False)


def test_a_checkpoint_written_on_a_gpu_is_refused_on_the_cpu_by_name(tmp_path):
    """Its random streams live in CUDA generators, which a CPU generator cannot take: one clear line naming the
    device, not torch's RuntimeError about generator state sizes (a hand-off checkpoint of a GPU leg, session 22)."""
    state = one_epoch_checkpoint(tmp_path)
    for record in state["history"]:
        record["device"] = "NVIDIA H200"
    torch.save(state, tmp_path / "checkpoint.pt")
    with pytest.raises(CheckpointError, match="written by a search on NVIDIA H200; resume it on that device type"):
        resume_tiny_search(tmp_path)


def test_a_resumed_search_takes_adams_capturable_flag_from_its_device_not_the_checkpoint(tmp_path):
    """Adam's load_state_dict restores the saved flag; the search resets it to its device's (capturable on CUDA
    only), so a checkpoint written with the other setting resumes and steps."""
    state = one_epoch_checkpoint(tmp_path)
    assert state["search"]["arch_optimizer"]["param_groups"][0]["capturable"] is False
    state["search"]["arch_optimizer"]["param_groups"][0]["capturable"] = True
    torch.save(state, tmp_path / "checkpoint.pt")
    again, result = resume_tiny_search(tmp_path)  # CPU Adam refuses capturable
    assert all(group["capturable"] is False for group in again.arch_optimizer.param_groups)
    assert result["finished"]


def test_corrupt_checkpoint_is_a_checkpoint_error(tmp_path):
    (tmp_path / "checkpoint.pt").write_bytes(b"not a checkpoint")
    search, hparams = tiny_search()
    train, valid = search_data(search, tiny_arrays(), 0)
    with pytest.raises(CheckpointError):
        run_search(search, train, valid, tmp_path, {"hparams": hparams}, progress=False)


# -- NB201 trajectory (needs the benchmark table) -------------------------------------------------------
@pytest.mark.data
def test_search_records_sampled_architectures_with_benchmark_accuracy(tmp_path, nb201):
    search, hparams = tiny_search(stage_epochs=[1])
    train, valid = search_data(search, tiny_arrays(), 0)
    result = run_search(search, train, valid, tmp_path, {"hparams": hparams}, benchmark=nb201, progress=False,
                        epoch_info={"images": "tiny arrays"})
    record = result["history"][0]
    assert record["images"] == "tiny arrays" and record["device"] == device_name("cpu")
    assert len(record["sampled_test"]) == TINY["sample_archs"]
    assert record["sampled_test_min"] <= record["sampled_test_max"]
    assert record["argmax_test"] == pytest.approx(nb201.query(record["arch"], "cifar10", split="test"))
    assert (tmp_path / "result.json").is_file()
    alphas = torch.tensor(record["alphas"]["cell"])  # the epoch's raw alpha (the official log prints softmax and ELU + 1 of it)
    assert alphas.shape == search.alphas["cell"].shape
    assert torch.allclose(alphas, search.alphas["cell"].detach().cpu(), atol=1e-4) and alphas.abs().sum() > 0


# -- reproduction table ---------------------------------------------------------------------------------
def test_quick_scale_rows_are_never_reproduced_and_fit_the_headline_schema():
    from reproduce.papers.drnas import _nb201_row
    from reproduce.report import HeadlineRow

    fake = [{"final_valid": 91.5, "final_test": 94.3, "final_architecture": "a", "epochs_done": 8,
             "job": {"seed": s}} for s in range(3)]
    quick = _nb201_row("c", "p", 94.36, fake, "quick")
    full = _nb201_row("c", "p", 94.36, fake, "full")
    assert quick["verdict"] == "partial" and full["verdict"] == "reproduced"
    far = [{**r, "final_test": 54.3} for r in fake]
    assert _nb201_row("c", "p", 94.36, far, "full")["verdict"] == "not reached"
    for row in (quick, full):
        HeadlineRow(**row)  # raises DataError on a schema mismatch


def test_only_runs_the_selected_searches_and_reports_the_rest_as_not_run(tmp_path, monkeypatch):
    """``reproduce drnas --only GLOB``: spreading a full run over sessions. Searches are faked; the selection,
    the reuse of runs finished earlier and the table are real."""
    import json

    from reproduce.papers import drnas as paper
    from reproduce.report import Headline

    ran = []

    def fake_run_jobs(jobs, device, threads):
        ran.extend(Path(job["out"]).name for job in jobs)
        return [fake_result(job) for job in jobs]

    def fake_result(job):
        history = [{"epoch": 0, "seconds": 1.0, "argmax_test": 90.0, "sampled_test_min": 80.0,
                    "sampled_test_max": 94.0, "sampled_test_mean": 88.0, "sampled_test": [80.0, 94.0]}]
        return {"identity": paper._identity(job), "finished": True, "epochs_done": 1, "history": history,
                "final_architecture": "cell", "final_valid": 91.0, "final_test": 94.0, "job": job}

    monkeypatch.setattr(paper, "_run_jobs", fake_run_jobs)
    monkeypatch.setattr(paper, "_check_images", lambda name: None)
    monkeypatch.setattr(paper, "_image_source", lambda name: f"images {name}")
    with pytest.raises(ConfigError, match="matches no run"):
        paper.run("quick", tmp_path, only="cifar10-nothing-*")
    # a DARTS search finished in an earlier session (same identity) is reported, not rerun
    darts_job = {"kind": "nb201", "method": "darts", "section": "darts_nb201",
                 "overrides": paper.nb201_overrides("quick", "darts_nb201"),
                 "seed": 0, "dataset": "cifar10", "images": "cifar10-subset", "device": "cpu",
                 "out": str(tmp_path / "runs" / "cifar10-darts_nb201-seed0")}
    Path(darts_job["out"]).mkdir(parents=True)
    earlier = {k: v for k, v in fake_result(darts_job).items() if k != "job"}
    (Path(darts_job["out"]) / "result.json").write_text(json.dumps(earlier))
    # a DARTS-space search finished earlier: its genotype is reported with its size at the evaluation scale
    space_job = {"kind": "darts", "method": "drnas", "section": "drnas_darts",
                 "overrides": {k: v for k, v in load_hparams("drnas", "scale_quick_darts").items() if k != "seeds"},
                 "seed": 0, "dataset": "cifar10", "images": "cifar10-subset", "device": "cpu",
                 "out": str(tmp_path / "runs" / "cifar10-drnas_darts-seed0")}
    Path(space_job["out"]).mkdir(parents=True)
    published = resolve_genotype("DrNAS_cifar10")  # 4.10 M parameters at 36 channels / 20 cells (paper: 4.1 M)
    space_result = {**fake_result(space_job), "final_architecture": repr(published)}
    space_result.pop("job")
    (Path(space_job["out"]) / "result.json").write_text(json.dumps(space_result))
    headline = Headline.read(paper.run("quick", tmp_path, only="cifar10-drnas_nb201_progressive-seed*"))
    space_row = next(r for r in headline.rows if r.claim.startswith("DARTS space"))
    assert space_row.ours == f"{published!r}, 4.10 M params at 36 channels / 20 cells"
    assert space_row.paper.endswith("4.1 M params") and "nasrepro train-eval" in space_row.note
    # the published cell on the NB301 stand-in scores as the published cell, and says it is a surrogate's guess
    standin = json.loads((tmp_path / "run_info.json").read_text())["darts_space_standin"]
    assert standin["runs"] == ["cifar10-drnas_darts-seed0"]
    if "unavailable" in standin:  # no data root here: the row says so
        assert "NB301 stand-in" in space_row.note and "not available here" in space_row.note
    else:
        assert standin["valid"][0] == pytest.approx(standin["published"]["drnas_cifar10"], abs=1e-3)
        assert "NB301 stand-in" in space_row.note and "not a trained result" in space_row.note
    assert sorted(ran) == ["cifar10-drnas_nb201_progressive-seed0", "cifar10-drnas_nb201_progressive-seed1",
                          "cifar10-drnas_nb201_progressive-seed2"]
    rows = {r.claim.split(": ")[1].split(" derived")[0]: r for r in headline.rows if "cifar10:" in r.claim}
    assert rows["DrNAS (progressive)"].seeds == 3 and rows["DrNAS (progressive)"].verdict != "not run"
    assert rows["DrNAS"].verdict == "not run"  # the plain search, not selected
    # the thread count a CPU search ran on is recorded (numbers depend on it), and a --threads run says so
    assert json.loads((tmp_path / "run_info.json").read_text())["cpu_threads_per_search"] == 1
    assert "on cpu (1 thread per search)" in (tmp_path / "results.md").read_text()
    headline = Headline.read(paper.run("quick", tmp_path, only="cifar10-drnas_nb201-seed0", threads=2))
    assert headline.command.endswith("--only 'cifar10-drnas_nb201-seed0' --threads 2")
    assert json.loads((tmp_path / "run_info.json").read_text())["cpu_threads_per_search"] == 2
    assert rows["DARTS (1st order)"].note.endswith(
        "images cifar10-subset (as found here: some epochs did not record their images)")
    assert rows["DARTS (1st order)"].seeds == 1  # the earlier run
    assert rows["GDAS"].verdict == "not run" and rows["GDAS"].seeds == 0
    assert "--only" in headline.command


def test_trained_on_names_every_recorded_source_and_flags_unrecorded_epochs(monkeypatch):
    from reproduce.papers import drnas as paper

    monkeypatch.setattr(paper, "_image_source", lambda name: f"images {name}")
    resumed = {"history": [{"epoch": 0}, {"epoch": 1, "images": "JPEG copy"}]}  # epoch 0 ran before the record
    recorded = {"history": [{"epoch": 0, "images": "pickles"}]}
    assert paper._trained_on([recorded], "cifar10") == "pickles"
    assert paper._trained_on([recorded, resumed], "cifar10") == (
        "JPEG copy; pickles; images cifar10 (as found here: some epochs did not record their images)")


def test_full_scale_reports_finished_searches_without_a_gpu_and_refuses_unfinished_ones(tmp_path, monkeypatch):
    """Paper-scale searches run on a lent GPU; their finished runs are reported on any machine."""
    import json

    from reproduce.papers import drnas as paper
    from reproduce.report import Headline

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(paper, "_check_images", lambda name: None)
    monkeypatch.setattr(paper, "_image_source", lambda name: f"images {name}")
    monkeypatch.setattr(paper, "_run_jobs", lambda jobs, device, threads: pytest.fail(f"ran {jobs}"))
    name = "cifar10-drnas_nb201_progressive-seed0"
    job = {"kind": "nb201", "method": "drnas", "section": "drnas_nb201_progressive",
           "overrides": paper.nb201_overrides("full", "drnas_nb201_progressive"), "seed": 0, "dataset": "cifar10",
           "images": "cifar10", "device": "cuda", "out": str(tmp_path / "runs" / name)}
    with pytest.raises(ConfigError, match="need a CUDA GPU"):
        paper.run("full", tmp_path, only=name)
    history = [{"epoch": 0, "seconds": 10.0, "argmax_test": 85.0, "sampled_test_min": 10.0,
                "sampled_test_max": 94.0, "sampled_test_mean": 80.0, "sampled_test": [10.0, 94.0],
                "images": "the images on the GPU machine"}]
    Path(job["out"]).mkdir(parents=True)
    (Path(job["out"]) / "result.json").write_text(json.dumps(
        {"identity": paper._identity(job), "finished": True, "epochs_done": 1, "history": history,
         "final_architecture": "cell", "final_valid": 81.0, "final_test": 85.0}))
    headline = Headline.read(paper.run("full", tmp_path, only=name))
    row = next(r for r in headline.rows if r.claim.startswith("NB201 cifar10: DrNAS (progressive)"))
    assert row.seeds == 1 and row.verdict == "not reached" and row.note.endswith("trained on the images on the GPU machine")
    assert json.loads((tmp_path / "run_info.json").read_text())["device"].startswith("cpu (report only")
    with pytest.raises(ConfigError, match="need a CUDA GPU"):  # the other seeds have not finished
        paper.run("full", tmp_path, only="cifar10-drnas_nb201_progressive-seed*")
    # asked for, the CPU trains them (slowly) at the paper's settings; nothing else changes
    ran = []
    monkeypatch.setattr(paper, "_run_jobs", lambda jobs, device, threads: ran.extend(jobs) or [])
    paper.run("full", tmp_path, only="cifar10-drnas_nb201_progressive-seed*", device="cpu")
    assert sorted(j["seed"] for j in ran) == [1, 2] and {j["device"] for j in ran} == {"cpu"}
    assert all(j["overrides"] == job["overrides"] for j in ran)
    with pytest.raises(ConfigError, match="device must be 'cpu' or 'cuda'"):
        paper.run("full", tmp_path, only=name, device="tpu")


def test_a_recovered_result_joins_the_table_but_not_the_figure(tmp_path, monkeypatch):
    """A run whose raw folder was lost keeps its final cell and totals (``recovered``, no history)."""
    import json

    from reproduce.papers import drnas as paper
    from reproduce.report import Headline

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(paper, "_check_images", lambda name: None)
    monkeypatch.setattr(paper, "_image_source", lambda name: f"images {name}")
    drawn = []
    monkeypatch.setattr(paper, "_trajectory_figure", lambda results, folder: drawn.extend(results) or [])
    history = [{"epoch": 0, "seconds": 10.0, "argmax_test": 85.0, "sampled_test_min": 10.0, "sampled_test_max": 94.0,
                "sampled_test_mean": 80.0, "sampled_test": [10.0, 94.0], "images": "JPEG", "device": "GPU"}]
    for seed, extra in ((0, {"history": [], "recovered": {"why": "lost", "search_seconds": 1050.4, "devices": ["H100"],
                                                          "images": "JPEG"}}),
                        (1, {"history": history})):
        job = {"kind": "nb201", "method": "drnas", "section": "drnas_nb201", "seed": seed, "dataset": "cifar10",
               "overrides": paper.nb201_overrides("full", "drnas_nb201"), "images": "cifar10"}
        out = tmp_path / "runs" / f"cifar10-drnas_nb201-seed{seed}"
        out.mkdir(parents=True)
        (out / "result.json").write_text(json.dumps(
            {"identity": paper._identity(job), "finished": True, "epochs_done": 100, "final_architecture": "cell",
             "final_valid": 40.0 + seed, "final_test": 54.0 + 2 * seed, **extra}))
    headline = Headline.read(paper.run("full", tmp_path, only="cifar10-drnas_nb201-seed[01]"))
    row = next(r for r in headline.rows if r.claim.startswith("NB201 cifar10: DrNAS derived"))
    assert row.seeds == 2 and row.ours == "40.50±0.50 / 55.00±1.00"
    assert "trained on JPEG; seed(s) 0: final cell only" in row.note
    assert [r["job"]["seed"] for r in drawn] == [1]  # the figure needs the per-epoch history
    runs = json.loads((tmp_path / "run_info.json").read_text())["runs"]
    assert runs["cifar10-drnas_nb201-seed0"]["search_seconds"] == 1050.4
    assert runs["cifar10-drnas_nb201-seed1"]["devices"] == ["GPU"]


def _job_named(name: str, out: Path) -> dict:
    """The paper-scale job of run ``name`` (``<dataset>-<section>-seed<n>``), as ``reproduce drnas --full --out
    OUT`` runs it."""
    from reproduce.papers import drnas as paper

    jobs = {Path(job["out"]).name: job for job in paper.search_jobs("full", out, "cuda")}
    assert name in jobs, f"{name} is no run of today's drnas.toml"
    return jobs[name]


def test_tracked_paper_scale_results_still_match_their_configuration():
    """Each result.json kept in git under results/drnas/full/runs must still be the run its name and today's
    drnas.toml describe; otherwise the report silently leaves it out (change the config knowingly, then
    move the run away). The H100 runs that had torch's pool bug (full_h100_pool_bug/) are held to the same: they
    match, which is why they had to leave full/. So is each committed hand-off checkpoint (full/handoff/): the next
    GPU session's leg resumes it, and one of another configuration would cost that session its device time."""
    from algorithms.nn.search import fingerprint, load_search_checkpoint
    from reproduce.papers import drnas as paper

    def job_hparams(job):
        return load_hparams("drnas", job["section"], job["overrides"])

    drnas_results = Path(__file__).resolve().parents[1] / "results" / "drnas"
    runs = sorted(drnas_results.glob("full/runs/*/result.json")) + sorted(
        drnas_results.glob("full_h100_pool_bug/runs/*/result.json"))
    assert runs, "the paper-scale results of earlier GPU sessions are tracked"
    for path in runs:
        job = _job_named(path.parent.name, path.parents[2])
        assert paper._finished_result(job) is not None, f"{path} no longer matches drnas.toml"
    for path in sorted(drnas_results.glob(f"full/{paper.HANDOFF_DIR}/*.pt")):
        job = _job_named(path.stem, path.parents[1])
        state = load_search_checkpoint(path)
        assert state["fingerprint"] == fingerprint(paper._identity(job)), f"{path} no longer matches drnas.toml"
        assert 0 < state["next_epoch"] < sum(job_hparams(job)["stage_epochs"]), \
            f"{path}: a finished search leaves its result.json, not a hand-off"


def test_report_only_reports_unfinished_searches_from_their_newest_checkpoint(tmp_path, monkeypatch):
    """``reproduce drnas --full --report-only`` on a machine without GPU or images: nothing runs; each unfinished
    search shows the epochs of the newer of its run folder's checkpoint and its committed hand-off, and joins the
    figure where its row has no finished search; a checkpoint that cannot be used is named, never used."""
    import json

    from algorithms.nn.search import fingerprint
    from nasrepro.errors import DataError
    from reproduce.papers import drnas as paper
    from reproduce.report import Headline

    def no_images(name):
        raise DataError(f"{name} not found here")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(paper, "_check_images", no_images)
    monkeypatch.setattr(paper, "_run_jobs", lambda *args: pytest.fail("--report-only ran a search"))
    drawn, draw = [], paper._trajectory_figure
    monkeypatch.setattr(paper, "_trajectory_figure", lambda results, folder: drawn.extend(results) or draw(results, folder))

    def checkpoint(path: Path, job: dict, epochs: int, identity: dict | None = None) -> None:
        history = [{"epoch": e, "seconds": 10.0, "device": "GPU", "train_acc": 20.0 + e, "argmax_test": 90.0 + e,
                    "arch": "cell", "sampled_test_min": 10.0, "sampled_test_max": 94.0, "sampled_test_mean": 80.0,
                    "sampled_test": [10.0, 94.0]} for e in range(epochs)]
        if job["kind"] == "darts":  # a DARTS-space search records no NB201 lookups
            history = [{k: v for k, v in h.items() if "test" not in k} for h in history]
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"fingerprint": fingerprint(identity or paper._identity(job)), "next_epoch": epochs,
                    "history": history}, path)

    handoff = tmp_path / paper.HANDOFF_DIR
    seed0, seed1, seed2 = (_job_named(f"cifar10-drnas_nb201-seed{s}", tmp_path) for s in range(3))
    checkpoint(handoff / "cifar10-drnas_nb201-seed0.pt", seed0, 29)  # the hand-off is newer than the run folder
    checkpoint(Path(seed0["out"]) / "checkpoint.pt", seed0, 12)
    checkpoint(handoff / "cifar10-drnas_nb201-seed1.pt", seed1, 3)  # the run folder is newer than the hand-off
    checkpoint(Path(seed1["out"]) / "checkpoint.pt", seed1, 5)
    checkpoint(handoff / "cifar10-drnas_nb201-seed2.pt", seed2, 7, identity={**paper._identity(seed2), "seed": 9})
    gdas = _job_named("cifar10-gdas_nb201-seed0", tmp_path)
    (handoff / "cifar10-gdas_nb201-seed0.pt").write_bytes(b"not a checkpoint")
    finished = _job_named("cifar10-darts_nb201-seed0", tmp_path)  # a finished row: drawn from its own run
    Path(finished["out"]).mkdir(parents=True)
    (Path(finished["out"]) / "result.json").write_text(json.dumps(
        {"identity": paper._identity(finished), "finished": True, "epochs_done": 100, "final_architecture": "cell",
         "final_valid": 40.0, "final_test": 54.3, "history": [{"epoch": 0, "seconds": 9.0, "argmax_test": 54.3,
                                                                "sampled_test_min": 10.0, "sampled_test_max": 94.0,
                                                                "sampled_test_mean": 80.0,
                                                                "sampled_test": [10.0, 94.0]}]}))
    checkpoint(handoff / "cifar10-darts_nb201-seed1.pt", _job_named("cifar10-darts_nb201-seed1", tmp_path), 50)
    space = _job_named("cifar10-drnas_darts-seed0", tmp_path)
    checkpoint(handoff / "cifar10-drnas_darts-seed0.pt", space, 3)

    headline = Headline.read(paper.run("full", tmp_path, report_only=True))
    assert headline.command.endswith("--full --report-only") and headline.figures
    rows = {r.claim.split(": ")[1].split(" derived")[0]: r for r in headline.rows if "cifar10:" in r.claim}
    assert rows["DrNAS"].verdict == "not run" and rows["DrNAS"].seeds == 0
    assert rows["DrNAS"].note == (
        f"no finished full-scale search in {tmp_path}/runs yet; in progress: seed 0 at 29 of 100 epochs, argmax cell "
        f"after it 118.00 % NB201 test ({handoff}/cifar10-drnas_nb201-seed0.pt); seed 1 at 5 of 100 epochs, argmax "
        f"cell after it 94.00 % NB201 test ({tmp_path}/runs/cifar10-drnas_nb201-seed1/checkpoint.pt); seed 2: no "
        f"usable checkpoint ({handoff}/cifar10-drnas_nb201-seed2.pt: a checkpoint of another configuration)")
    assert "seed 0: no usable checkpoint" in rows["GDAS"].note and "unreadable checkpoint" in rows["GDAS"].note
    assert rows["DARTS (1st order)"].seeds == 1 and rows["DARTS (1st order)"].note.endswith(
        f"in progress: seed 1 at 50 of 100 epochs, argmax cell after it 139.00 % NB201 test "
        f"({handoff}/cifar10-darts_nb201-seed1.pt)")
    # the DARTS-space search in progress: said before the advice on training its genotype
    space = next(r for r in headline.rows if r.claim.startswith("DARTS space"))
    assert space.note.startswith(f"no finished full-scale search yet; in progress: seed 0 at 3 of 50 epochs "
                                 f"({handoff}/cifar10-drnas_darts-seed0.pt); train a genotype")
    # the figure: the finished DARTS run, and for DrNAS (no finished run) the unfinished ones
    assert sorted((r["job"]["section"], r["job"]["seed"], r.get("epochs_done")) for r in drawn) == [
        ("darts_nb201", 0, 100), ("drnas_nb201", 0, 29), ("drnas_nb201", 1, 5)]
    run_info = json.loads((tmp_path / "run_info.json").read_text())
    assert run_info["device"] == "none (--report-only: no search ran)" and run_info["report_only"]
    assert run_info["in_progress"]["cifar10-drnas_nb201-seed0"] == {
        "epochs_done": 29, "epochs": 100, "checkpoint": f"{handoff}/cifar10-drnas_nb201-seed0.pt", "arch": "cell",
        "train_acc": 48.0, "argmax_test": 118.0, "search_seconds": 290.0, "devices": ["GPU"]}
    assert run_info["in_progress"][Path(gdas["out"]).name]["checkpoint"] is None
    markdown = (tmp_path / "results.md").read_text()
    assert "Scale: **full**, report only (no search ran)" in markdown
    assert (f"- `cifar10-drnas_nb201-seed0`: 29 of 100 epochs, 4.8 min on GPU (`{handoff}/cifar10-drnas_nb201-seed0.pt`)"
            "; after epoch 29: train acc. 48.00 %, argmax cell 118.00 % NB201 test") in markdown
    # nothing was written into the runs or moved: the checkpoints are where they were
    assert sorted(p.name for p in handoff.iterdir()) == [
        "cifar10-darts_nb201-seed1.pt", "cifar10-drnas_darts-seed0.pt", "cifar10-drnas_nb201-seed0.pt",
        "cifar10-drnas_nb201-seed1.pt", "cifar10-drnas_nb201-seed2.pt", "cifar10-gdas_nb201-seed0.pt"]
    for kwargs in ({"device": "cuda"}, {"only": "cifar10-*"}):
        with pytest.raises(ConfigError, match="--report-only runs no search and reports every run; drop"):
            paper.run("full", tmp_path, report_only=True, **kwargs)
    with pytest.raises(ConfigError, match="--report-only is for the full scale"):
        paper.run("quick", tmp_path / "quick", report_only=True)
    assert not (tmp_path / "quick").exists()


@pytest.mark.parametrize("argv, message", [
    (["fade", "--report-only"], "paper 'fade' does not support --report-only (its runs do not span sessions)"),
    (["all", "--report-only"], "--only, --device, --threads and --report-only apply to one paper; name the paper"),
])
def test_report_only_elsewhere_is_one_line(argv, message, tmp_path, capsys):
    from nasrepro import cli

    assert cli.main(["reproduce", *argv, "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.strip() == f"nasrepro: error: {message}"
    assert not (tmp_path / "out").exists()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_graph_step_learns_like_the_eager_step():
    losses = {}
    for graphs in (False, True):
        search, _ = tiny_search(cuda_graphs=graphs, channels=8, batch_size=32)
        search.adapt_search_space("nb201", "cifar10", num_classes=10, device="cuda")
        train, valid = search_data(search, tiny_arrays(200), 0)  # 100 per half: a short last batch
        search.new_epoch(0)
        before = search.alphas["cell"].detach().clone()
        losses[graphs] = torch.stack([search.step(train.next_batch(), valid.next_batch())["train_loss"]
                                      for _ in range(30)]).cpu()
        assert not torch.equal(before, search.alphas["cell"].detach())  # replayed arch steps update alpha
    assert torch.isfinite(losses[True]).all()
    assert losses[True][-10:].mean() == pytest.approx(losses[False][-10:].mean(), abs=0.3)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("fused", [False, True])
def test_cuda_graph_replays_follow_the_eager_search_step_for_step(fused):
    """Paired runs (same seeds, same batches) with and without CUDA graphs give the same alpha after every
    step, across a short last batch and a recapture at the next epoch. A replay that reused a captured
    Dirichlet sample or a stale input would part the two by about one Adam step (arch_lr) per step; the loss
    comparison above cannot see that.

    Like for like: IEEE fp32 convolutions (no TF32) and deterministic cuDNN, so both runs do the same arithmetic.
    Adam's per-coordinate step turns rounding noise into a large step where a gradient is near zero. On an H200
    (session 22, TF32 convolutions) the fused runs parted by 1.9e-9 after one step, eager Adam's float64 bias
    correction against the capturable one's fp32 (both paths use the capturable one since), and by 0.8 of the
    largest step after eight. On the CPU a 2e-9 shift of alpha stays below 2e-8 over the same eight steps, while
    TF32 rounding (precision tf32_emulated against fp32) parts them by 3-4 largest steps."""
    trajectories = {}
    for graphs in (False, True):
        with torch.backends.cudnn.flags(enabled=True, benchmark=False, deterministic=True, allow_tf32=False):
            search, _ = tiny_search(cuda_graphs=graphs, fused_cells=fused, cudnn_benchmark=False, channels=8,
                                    batch_size=32, precision="fp32_strict")
            search.adapt_search_space("nb201", "cifar10", num_classes=10, device="cuda")
            train, valid = search_data(search, tiny_arrays(200), 0)  # 100 per half: 3 full batches and a short one
            alphas = [search.alphas["cell"].detach().clone()]
            for epoch in range(2):
                search.new_epoch(epoch)
                for _ in range(len(train)):
                    search.step(train.next_batch(), valid.next_batch())
                    alphas.append(search.alphas["cell"].detach().clone())
        trajectories[graphs] = torch.stack(alphas).cpu()
    eager, graphed = trajectories[False], trajectories[True]
    moved = (eager[1:] - eager[:-1]).abs().amax()
    assert moved > 0
    apart = (graphed - eager).abs().amax(dim=(1, 2))
    assert apart.amax() < 0.01 * moved, (
        f"largest alpha step {moved:.2e}; graphed minus eager after each step: "
        + " ".join(f"{x:.1e}" for x in apart.tolist()))


def test_search_job_records_its_images_in_every_epoch(tmp_path, monkeypatch, capsys):
    """_search_job hands the image description to run_search (so each epoch record names its images), and where
    stderr is no terminal (no progress bar) a line per epoch."""
    import algorithms.nn.search as search_module
    from reproduce.papers import drnas as paper

    seen = {}
    monkeypatch.setattr(paper, "_load_images", lambda name: type("A", (), {"num_classes": 10})())
    monkeypatch.setattr(paper, "_image_source", lambda name: f"images {name}")
    monkeypatch.setattr(search_module, "search_data", lambda search, arrays, seed: (None, None))
    monkeypatch.setattr(search_module, "run_search", lambda *a, **k: seen.update(k) or {"finished": True})
    job = {"kind": "darts", "row": "drnas", "method": "drnas", "section": "drnas_darts",
           "overrides": {k: v for k, v in load_hparams("drnas", "scale_quick_darts").items() if k != "seeds"},
           "seed": 0, "dataset": "cifar10", "images": "cifar10-subset", "device": "cpu", "out": str(tmp_path)}
    paper._search_job(job)
    assert seen["epoch_info"] == {"images": "images cifar10-subset"}
    assert seen["progress"] is False  # captured stderr is no terminal
    seen["on_epoch"]([{"epoch": 0}, {"epoch": 1, "seconds": 912.4, "train_acc": 29.1, "argmax_test": 93.34}])
    assert capsys.readouterr().err == (f"{tmp_path.name}: epoch 2/2 done in 912 s, train acc. 29.10 %, argmax cell "
                                       "NB201 test 93.34 %\n")


@pytest.fixture
def search_pools(monkeypatch):
    """``reproduce.papers.drnas``'s process pool replaced by a map in this process: the keyword arguments of
    every pool built, in order."""
    from reproduce.papers import drnas as paper

    built = []

    class FakePool:
        def __init__(self, **kwargs):
            built.append(kwargs)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def map(self, fn, jobs):
            return [fn(job) for job in jobs]

    monkeypatch.setattr(paper, "ProcessPoolExecutor", FakePool)
    return built


def test_fp32_searches_share_no_gpu_and_bf16_ones_do(monkeypatch, search_pools):
    from reproduce.papers import drnas as paper

    order = []
    monkeypatch.setattr(paper, "_search_job", lambda job: order.append(job["section"]) or job)
    monkeypatch.setattr(paper.os, "cpu_count", lambda: 16)
    fp32 = [{"section": "drnas_nb201", "overrides": {}}, {"section": "darts_nb201", "overrides": {}}]
    paper._run_jobs(fp32, "cuda")
    assert order == ["drnas_nb201", "darts_nb201"] and search_pools == []  # in this process, one after the other
    paper._run_jobs([{"section": "drnas_darts", "overrides": {}}] * 2, "cuda")  # bf16: share, one per 2 cores
    assert [pool["max_workers"] for pool in search_pools] == [2]


def test_one_cpu_search_in_this_process_runs_on_one_thread_like_the_pool(monkeypatch):
    """A CPU search's numbers depend on the thread count (session 18: the quick DrNAS seed 1 ended on a
    93.61 % cell with torch's 2 threads and on 88.66 % with the pool's 1), so ``--only`` on one job uses one."""
    from reproduce.papers import drnas as paper

    monkeypatch.setattr(paper, "_search_job", lambda job: torch.get_num_threads())
    threads_before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert paper._run_jobs([{"section": "drnas_nb201", "overrides": {}}], "cpu") == [1]
        assert torch.get_num_threads() == 2
        assert paper._run_jobs([{"section": "drnas_nb201", "overrides": {}}], "cuda") == [2]  # no effect on a GPU
        torch.set_num_threads(1)
        assert paper._run_jobs([{"section": "drnas_nb201", "overrides": {}}], "cpu", threads=2) == [2]  # --threads 2
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads_before)


def test_threads_per_search_size_the_cpu_pool(monkeypatch, search_pools):
    """``--threads N``: one worker per N cores, each initialised to N threads."""
    from reproduce.papers import drnas as paper

    monkeypatch.setattr(paper, "_search_job", lambda job: job)
    monkeypatch.setattr(paper.os, "cpu_count", lambda: 8)
    jobs = [{"section": "drnas_nb201", "overrides": {}}] * 6
    paper._run_jobs(jobs, "cpu")
    paper._run_jobs(jobs, "cpu", threads=2)
    assert [(pool["max_workers"], pool["initializer"], pool["initargs"]) for pool in search_pools] == [
        (6, paper.set_cpu_threads, (1,)), (4, paper.set_cpu_threads, (2,))]


@pytest.mark.parametrize("argv, message", [
    (["--threads", "0"], "nasrepro: error: --threads must be positive, got 0"),
    (["--threads", "2", "--device", "cuda", "--full"], "nasrepro: error: drnas: --threads sets CPU threads per search; "
                                                       "these searches run on cuda (add --device cpu)"),
])
def test_bad_threads_are_one_line(argv, message, tmp_path, monkeypatch, capsys):
    from nasrepro import cli
    from reproduce.papers import drnas as paper

    monkeypatch.setattr(paper, "_check_images", lambda images: None)
    monkeypatch.setattr(paper, "_check_device", lambda device, jobs: None)  # as on a GPU machine
    monkeypatch.setattr(paper, "_run_jobs", lambda *a: pytest.fail("no search may start"))
    assert cli.main(["reproduce", "drnas", *argv, "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [message]
    assert not (tmp_path / "out").exists()


def test_papers_without_threads_refuse_it(tmp_path, capsys):
    from nasrepro import cli

    assert cli.main(["reproduce", "fade", "--threads", "2", "--out", str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err.strip() == ("nasrepro: error: paper 'fade' does not support --threads "
                                               "(its workers run one CPU thread each)")


def test_finished_searches_are_reported_where_their_images_are_absent(tmp_path, monkeypatch):
    """A laptop without CIFAR-10 (or any data root) still reports searches that finished on a GPU machine."""
    import json

    from nasrepro.errors import DataError
    from reproduce.papers import drnas as paper
    from reproduce.report import Headline

    def no_images(name):
        raise DataError(f"{name} not found here")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(paper, "_check_images", no_images)
    monkeypatch.setattr(paper, "_run_jobs", lambda jobs, device, threads: pytest.fail(f"ran {jobs}"))
    name = "cifar10-drnas_nb201-seed0"
    job = {"kind": "nb201", "method": "drnas", "section": "drnas_nb201",
           "overrides": paper.nb201_overrides("full", "drnas_nb201"), "seed": 0, "dataset": "cifar10",
           "images": "cifar10", "device": "cuda", "out": str(tmp_path / "runs" / name)}
    Path(job["out"]).mkdir(parents=True)
    history = [{"epoch": 0, "seconds": 10.0, "argmax_test": 94.36, "sampled_test_min": 10.0, "sampled_test_max": 94.0,
                "sampled_test_mean": 80.0, "sampled_test": [10.0, 94.0], "images": "the GPU machine's images"}]
    (Path(job["out"]) / "result.json").write_text(json.dumps(
        {"identity": paper._identity(job), "finished": True, "epochs_done": 1, "history": history,
         "final_architecture": "cell", "final_valid": 91.55, "final_test": 94.36}))
    rows = {r.claim: r for r in Headline.read(paper.run("full", tmp_path)).rows}
    reported = rows["NB201 cifar10: DrNAS derived cell, valid / test accuracy (%)"]
    assert reported.seeds == 1 and reported.verdict == "reproduced" and "the GPU machine's images" in reported.note
    missing = rows["NB201 cifar10: GDAS derived cell, valid / test accuracy (%)"]
    assert missing.verdict == "not measurable here" and "cifar10 not found here" in missing.note
