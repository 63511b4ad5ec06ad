"""FaDE: the multi-cell space, regions, the ranking rule, the pseudo-gradient step, the region supernet."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from dataclasses import asdict

from algorithms.fade import (GroundTruthSettings, MultiCellNetwork, MultiCellSupernet, NB201Cell,
                             PseudoGradientEvolution, Region, RegionDARTS, TrainedGroundTruth, rank_utilities,
                             region_around, region_scores, stage_key, train_region)
from benchmarks.multicell import MultiCellArch, MultiCellSpace, cell_of_resolution_stage, resolution_stages
from benchmarks.nb201 import N_EDGES, OPS, NB201Arch, NB201Space
from nasrepro.errors import CheckpointError, ConfigError, InvalidArchError
from reproduce.executors import LocalExecutor


# --------------------------------------------------------------------------------------------------
# The space
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n_stages", [1, 2, 3])
def test_space_contract(n_stages, rng):
    space = MultiCellSpace(n_stages)
    arch = space.sample(rng)
    assert arch.n_stages == n_stages and len(arch.ops) == 6 * n_stages
    assert space.parse(space.format(arch)) == arch
    assert space.parse(arch.id).id == arch.id
    neighbours = space.neighbours(arch)
    assert len(neighbours) == len({n.id for n in neighbours}) == 6 * n_stages * (len(OPS) - 1)
    assert all(space.distance(arch, n) == 1 for n in neighbours)
    assert space.distance(arch, space.mutate(arch, rng)) == 1
    onehot = space.encode([arch, neighbours[0]], "onehot")
    assert onehot.shape == (2, 30 * n_stages) and onehot.dtype == np.float32
    assert np.array_equal(onehot.sum(axis=1), [6 * n_stages] * 2)
    assert space.encode([arch], "ops").tolist() == [list(arch.ops)]
    assert space.size == 5 ** (6 * n_stages)


def test_one_stage_is_nb201(rng):
    nb201 = NB201Space().sample(rng)
    arch = MultiCellSpace(1).parse(nb201.id)
    assert arch.id == nb201.id and arch.to_nb201() == nb201
    with pytest.raises(InvalidArchError):
        MultiCellSpace(2).sample(rng).to_nb201()


def test_canonical_id_and_equality():
    a = MultiCellArch.from_ops([0, 1, 2, 3, 4, 0, 1, 1, 1, 1, 1, 1], 2)
    b = MultiCellArch((NB201Arch((0, 1, 2, 3, 4, 0)), NB201Arch((1,) * 6)))
    assert a == b and hash(a) == hash(b) and a.id == b.id
    assert a.id.count("::") == 1
    assert MultiCellSpace(2).parse(a.id) == a


@pytest.mark.parametrize("text", ["", "|none~0|", "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
                                  "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|::|bad~0|+|none~0|none~1|"
                                  "+|none~0|none~1|none~2|", 3])
def test_parse_rejects_malformed(text):
    with pytest.raises(InvalidArchError):
        MultiCellSpace(2).parse(text)


def test_validation_on_construction():
    with pytest.raises(InvalidArchError):
        MultiCellArch(())
    with pytest.raises(InvalidArchError):
        MultiCellArch.from_ops([0] * 7, 1)
    with pytest.raises(InvalidArchError):
        MultiCellArch.from_ops([5] * 6, 1)
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ConfigError):
            MultiCellSpace(bad)
    with pytest.raises(InvalidArchError):  # a 1-stage arch is not in the 2-stage space
        MultiCellSpace(2).neighbours(MultiCellSpace(1).sample(np.random.default_rng(0)))


def test_resolution_stage_mapping():
    assert resolution_stages(1) == 3 and resolution_stages(5) == 5
    assert [cell_of_resolution_stage(r, 1) for r in range(3)] == [0, 0, 0]  # NB201: one shared cell
    assert [cell_of_resolution_stage(r, 3) for r in range(3)] == [0, 1, 2]
    assert [cell_of_resolution_stage(r, 2) for r in range(3)] == [0, 0, 1]
    assert [cell_of_resolution_stage(r, 4) for r in range(4)] == [0, 1, 2, 3]


# --------------------------------------------------------------------------------------------------
# Regions
# --------------------------------------------------------------------------------------------------
def test_region_around_centre(rng):
    space = MultiCellSpace(2)
    centre = space.sample(rng)
    region = region_around(centre, open_slots=3, ops_per_slot=3, rng=rng)
    assert region.contains(centre) and len(region.open_slots) == 3
    members = region.members()
    assert region.size == 27 == len(members) == len({m.id for m in members})
    assert all(region.contains(m) and space.distance(m, centre) <= 3 for m in members)
    masks = region.masks()
    assert set(masks) == {stage_key(0), stage_key(1)}
    assert all(m.shape == (N_EDGES, len(OPS)) for m in masks.values())
    assert int(sum(m.sum() for m in masks.values())) == 12 - 3 + 3 * 3
    assert Region(region.n_stages, region.candidates).id == region.id


def test_region_draws_follow_probabilities(rng):
    centre = MultiCellArch.from_ops([0] * 6, 1)
    p = np.full((6, 5), 1e-9)
    p[:, 3] = 1.0
    for _ in range(5):
        region = region_around(centre, 6, 2, rng, probabilities=p)
        assert all(c == (0, 3) for c in region.candidates)


@pytest.mark.parametrize("open_slots, ops_per_slot", [(0, 2), (7, 2), (2, 1), (2, 6), (True, 2), (2.0, 2)])
def test_region_bad_shape_is_config_error(open_slots, ops_per_slot, rng):
    with pytest.raises(ConfigError):
        region_around(MultiCellSpace(1).sample(rng), open_slots, ops_per_slot, rng)


@pytest.mark.parametrize("candidates", [((0,),) * 5, ((),) + ((0,),) * 5, ((0, 5),) + ((0,),) * 5,
                                        (("x",),) + ((0,),) * 5])
def test_region_bad_candidates(candidates):
    with pytest.raises(InvalidArchError):
        Region(1, candidates)


# --------------------------------------------------------------------------------------------------
# Ranking rule
# --------------------------------------------------------------------------------------------------
def _toy_region() -> Region:
    return Region(1, ((1, 3), (2,), (0, 4), (1,), (1,), (2,)))


def test_ranking_rule_on_toy_supernet_state():
    region = _toy_region()
    alpha = np.zeros((6, 5))
    alpha[0, 3] = 2.0   # slot 0 prefers op 3 over op 1
    alpha[2, 0] = 0.5   # slot 2 prefers op 0 over op 4, less strongly
    alpha[1, 2] = 9.0   # closed slot: contributes log 1 = 0 to every member
    alpha[0, 2] = 50.0  # not a candidate of slot 0: must be ignored
    scores = region_scores({"stage0": alpha}, region)
    members = [m.ops[0] * 10 + m.ops[2] for m in region.members()]  # (slot 0 op, slot 2 op)
    ranked = [members[i] for i in np.argsort(-scores)]
    assert ranked == [30, 34, 10, 14]
    # the score is the member's log-probability under the restricted softmax
    expected = np.log(np.exp(2) / (np.exp(2) + 1)) + np.log(np.exp(0.5) / (np.exp(0.5) + 1))
    assert scores.max() == pytest.approx(expected)
    # sum_softmax ranks by weight mass instead; here it agrees on the best member
    assert int(np.argmax(region_scores({"stage0": alpha}, region, "sum_softmax"))) == int(np.argmax(scores))


def test_ranking_rule_bad_input():
    region = _toy_region()
    with pytest.raises(ConfigError):
        region_scores({"stage0": np.zeros((6, 5))}, region, "mean")
    with pytest.raises(ConfigError):
        region_scores({"stage1": np.zeros((6, 5))}, region)
    with pytest.raises(ConfigError):
        region_scores({"stage0": np.zeros((5, 5))}, region)


# --------------------------------------------------------------------------------------------------
# Pseudo-gradient evolution
# --------------------------------------------------------------------------------------------------
def _evolution(rng, **overrides) -> PseudoGradientEvolution:
    settings = dict(regions_per_generation=3, open_slots=3, ops_per_slot=3, step_rule="rank_weighted",
                    utility="centred_rank", learning_rate=1.0)
    settings.update(overrides)
    return PseudoGradientEvolution(MultiCellSpace(1), rng, **settings)


def test_rank_utilities():
    u = rank_utilities(np.array([0.3, -1.0, 2.0, 0.5]))
    assert u.sum() == pytest.approx(0.0) and np.argsort(u).tolist() == [1, 0, 3, 2]
    nes = rank_utilities(np.array([0.3, -1.0, 2.0, 0.5]), "nes")
    assert nes.sum() == pytest.approx(0.0) and int(np.argmax(nes)) == 2
    assert rank_utilities(np.array([1.0, 1.0])).tolist() == [0.0, 0.0]  # a tie says nothing
    with pytest.raises(ConfigError):
        rank_utilities(np.array([1.0, 2.0]), "linear")


@pytest.mark.parametrize("step_rule", ["rank_weighted", "best_member"])
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_pseudo_gradient_step_direction(step_rule, sign, rng):
    """Members scored by how many of their slots hold op 3 (or the reverse): the step raises (lowers)
    op 3's logit on every open slot, and leaves the slots the region holds fixed untouched."""
    search = _evolution(rng, step_rule=step_rule, regions_per_generation=1)
    region = Region(1, ((1, 3), (0, 3, 4), (2,), (3, 2), (0,), (4,)))
    scores = sign * np.array([sum(op == 3 for op in m.ops) for m in region.members()], dtype=float)
    step = search.pseudo_gradient([region], [scores])
    for slot in region.open_slots:
        others = [op for op in region.candidates[slot] if op != 3]
        diffs = sign * (step[slot, 3] - step[slot, others])
        assert (diffs >= 0).all() and (diffs > 0).any()
    for slot in set(range(6)) - set(region.open_slots):
        assert np.allclose(step[slot], 0.0)


def test_search_moves_towards_the_synthetic_optimum(rng):
    """With ranks from a synthetic objective (closeness to a target cell), the memory-less search's centre
    approaches the target; with the ranks reversed it does not."""
    target = np.array([3, 1, 2, 3, 0, 4])

    def run(sign: float) -> int:
        search = _evolution(np.random.default_rng(1), learning_rate=0.5)
        for _ in range(40):
            regions = search.ask()
            search.tell(regions, [sign * np.array([(np.array(m.ops) == target).sum() for m in r.members()], float)
                                  for r in regions])
        return int((np.array(search.mode().ops) != target).sum())

    assert run(+1.0) <= 1
    assert run(-1.0) >= 4


def test_evolution_state_round_trip(rng):
    search = _evolution(rng)
    regions = search.ask()
    search.tell(regions, [np.arange(r.size, dtype=float) for r in regions])
    clone = _evolution(np.random.default_rng(99))
    clone.load_state_dict(json.loads(json.dumps(search.state_dict())))
    assert np.allclose(clone.theta, search.theta) and clone.centre == search.centre
    assert [r.id for r in clone.ask()] == [r.id for r in search.ask()]


@pytest.mark.parametrize("bad", [dict(step_rule="sgd"), dict(utility="raw"), dict(learning_rate=0.0),
                                 dict(learning_rate=float("nan")), dict(regions_per_generation=0),
                                 dict(open_slots=9), dict(ops_per_slot=1)])
def test_evolution_bad_settings(bad, rng):
    with pytest.raises(ConfigError):
        _evolution(rng, **bad)


def test_tell_rejects_mismatched_scores(rng):
    search = _evolution(rng)
    regions = search.ask()
    with pytest.raises(ConfigError):
        search.tell(regions, [np.zeros(2)] * len(regions))
    with pytest.raises(ConfigError):
        search.tell(regions, [np.full(r.size, np.nan) for r in regions])
    with pytest.raises(ConfigError):
        search.tell(regions[:1], [])


# --------------------------------------------------------------------------------------------------
# The region supernet
# --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n_stages", [1, 2, 4])
def test_multicell_supernet_forward_prune_derive(n_stages, one_torch_thread):
    net = MultiCellSupernet(C=4, N=1, n_stages=n_stages)
    assert net.cell_types == tuple(f"stage{s}" for s in range(n_stages))
    region = region_around(MultiCellSpace(n_stages).sample(np.random.default_rng(0)), 2, 2, np.random.default_rng(1))
    net.prune(region.masks())
    weights = {k: torch.softmax(torch.zeros(6, 5), -1) for k in net.cell_types}
    assert net(torch.zeros(2, 3, 16, 16), weights).shape == (2, 10)
    alphas = {k: torch.randn(6, 5, generator=torch.Generator().manual_seed(i)) for i, k in enumerate(net.cell_types)}
    assert region.contains(net.derive(alphas, region.masks()))


def test_region_darts_bad_config():
    with pytest.raises(ConfigError):
        RegionDARTS(np.random.default_rng(0), space="nb201")
    from algorithms.nn.search import load_hparams, make_search
    search = make_search(RegionDARTS, load_hparams("fade", "region_supernet"), 0)
    with pytest.raises(ConfigError):
        search.adapt_search_space("nb201", "cifar10", region=None)


def _tiny_arrays(n: int = 96):
    from algorithms.nn.data import ImageArrays

    g = np.random.default_rng(0)
    return ImageArrays("tiny", g.integers(0, 256, (n, 16, 16, 3), dtype=np.uint8), g.integers(0, 10, n),
                       g.integers(0, 256, (8, 16, 16, 3), dtype=np.uint8), g.integers(0, 10, 8), 10,
                       (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))


def test_train_region_end_to_end_and_cached(tmp_path, one_torch_thread):
    """A tiny quick smoke: train a region supernet on random images, score its members, and find the
    finished region again without training (same identity); another seed is a different run."""
    from algorithms.nn.search import load_hparams

    hparams = load_hparams("fade", "region_supernet", dict(channels=4, cells=1, image_size=16, stage_epochs=[2],
                                                           batch_size=16, arch_lr=3e-2))
    region = Region(2, ((1, 3), (2,), (0, 4), (1,), (1,), (2,)) + ((2,),) * 6)
    result = train_region(region, hparams, 0, _tiny_arrays(), tmp_path / "r", "sum_log_softmax")
    assert result.scores.shape == (region.size,) and np.isfinite(result.scores).all()
    assert result.epochs == 2 and np.ptp(result.scores) > 0  # the architecture weights moved
    assert not (tmp_path / "r" / "checkpoint.pt").exists() and (tmp_path / "r" / "region.json").is_file()
    again = train_region(region, hparams, 0, _tiny_arrays(), tmp_path / "r", "sum_log_softmax")
    assert np.array_equal(again.scores, result.scores) and again.seconds == result.seconds


def test_interrupted_region_resumes_to_the_same_result(tmp_path, one_torch_thread):
    from algorithms.nn.search import load_hparams

    hparams = load_hparams("fade", "region_supernet", dict(channels=4, cells=1, image_size=16, stage_epochs=[2],
                                                           batch_size=16, arch_lr=3e-2))
    region = Region(1, ((1, 3), (2,), (0, 4), (1,), (1,), (2,)))
    straight = train_region(region, hparams, 3, _tiny_arrays(), tmp_path / "a", "sum_log_softmax")
    assert train_region(region, hparams, 3, _tiny_arrays(), tmp_path / "b", "sum_log_softmax",
                        stop_after_epochs=1) is None
    assert (tmp_path / "b" / "checkpoint.pt").is_file() and not (tmp_path / "b" / "region.json").exists()
    resumed = train_region(region, hparams, 3, _tiny_arrays(), tmp_path / "b", "sum_log_softmax")
    assert np.array_equal(resumed.scores, straight.scores)
    # a checkpoint of another configuration is refused, not overwritten
    from nasrepro.errors import CheckpointError
    train_region(region, hparams, 4, _tiny_arrays(), tmp_path / "c", "sum_log_softmax", stop_after_epochs=1)
    with pytest.raises(CheckpointError):
        train_region(region, hparams, 5, _tiny_arrays(), tmp_path / "c", "sum_log_softmax")


def test_settings_reject_unknown_scale_keys(monkeypatch):
    from reproduce.papers import fade as paper
    from algorithms import read_config_file

    config = read_config_file("fade")
    paper.Settings(config, "quick")  # the shipped config is complete
    for section, change in [("scale_quick", {"generatoins": 3}), ("scale_quick", {"generations": "many"}),
                            ("regions", {"open_slot": 3}), ("evolution", {"lr": 1.0}),
                            ("bayesian_optimisation", {"kappa": 2.0})]:
        broken = {**config, section: {**config[section], **change}}
        with pytest.raises(ConfigError):
            paper.Settings(broken, "quick")
    broken = {**config, "scale_quick": {**config["scale_quick"], "supernet": {"chanels": 8}}}
    with pytest.raises(ConfigError):
        paper.Settings(broken, "quick")
    with pytest.raises(ConfigError):
        paper.Settings({k: v for k, v in config.items() if k != "regions"}, "quick")
    with pytest.raises(ConfigError):
        paper.run("medium", "/nonexistent")


# --------------------------------------------------------------------------------------------------
# With the data root: NB201 ground truth
# --------------------------------------------------------------------------------------------------
@pytest.mark.data
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_baselines_on_nb201(nb201):
    from algorithms.fade import bayesian_optimisation
    from reproduce.papers import fade as paper

    settings = paper.Settings.load("quick")
    settings.baseline_seeds = [0, 1]
    settings.bo = {**settings.bo, "n_candidates": 50}
    curves = paper._baselines(settings, nb201, MultiCellSpace(1), budget=8)
    for name in ("random", "bo"):
        assert len(curves[name]) == 2 and all(len(c) == 8 for c in curves[name])
        assert all(0 < v < 100 for c in curves[name] for v in c)
    # BO never proposes an architecture twice
    space = MultiCellSpace(1)
    evaluate = lambda a: float(nb201.query(a.to_nb201(), "cifar10"))  # noqa: E731
    history = bayesian_optimisation(space, evaluate, 10, np.random.default_rng(0), n_init=3, n_candidates=50,
                                    xi=0.01, gp_hparams=settings_gp())
    assert len({a.id for a, _ in history}) == 10
    with pytest.raises(ConfigError):
        bayesian_optimisation(space, evaluate, 3, np.random.default_rng(0), n_init=0, n_candidates=5, xi=0.0,
                              gp_hparams=settings_gp())


def settings_gp() -> dict:
    from algorithms import read_config_file

    return dict(read_config_file("predictors")["gp"])


def test_cli_full_scale_without_gpu_is_one_line_error(tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: --full would start the paper-scale run")
    from nasrepro.cli import main

    assert main(["reproduce", "fade", "--full", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("nasrepro: error:") and "GPU" in err[0]
    assert not (tmp_path / "out" / "headline.json").exists()


def test_figures_from_synthetic_results(tmp_path):
    from reproduce.papers import fade as paper

    g = np.random.default_rng(0)
    regions = [{"scores": g.normal(size=8).tolist(), "valid": g.uniform(80, 90, 8).tolist(),
                "spearman": float(g.uniform(-1, 1)), "kendall": float(g.uniform(-1, 1))} for _ in range(3)]
    gens = [{"trainings": 2 * i, "centre_test": 80.0 + i, "expected_test": 70.0 + i} for i in range(3)]
    evolution = {"runs": [{"seed": 0, "generations": gens}],
                 "baselines": {"random": g.uniform(80, 90, (3, 4)).tolist(), "bo": g.uniform(80, 90, (3, 4)).tolist()}}
    cost = {"rows": [{"n_stages": s, "seconds_per_step": float(s)} for s in (1, 2)]}
    paths = (paper._correlation_figure({"regions": regions}, tmp_path / "c", "valid (%)")
             + paper._evolution_figure(evolution, tmp_path / "e", "test (%)") + paper._cost_figure(cost, tmp_path))
    assert len(paths) == 6 and all(p.stat().st_size > 0 for p in paths)


@pytest.mark.data
def test_quick_pipeline_end_to_end_tiny_and_resumed(data_root, tmp_path, monkeypatch, one_torch_thread):
    """The whole paper module at a toy size (2 regions, 1 generation, 2 depths, at S = 1 and S = 2): a valid
    headline with every claim and its figures; a second run finds every region and every trained architecture
    finished and writes the same rows."""
    from reproduce.papers import fade as paper
    from reproduce.report import VERDICTS, Headline

    settings = paper.Settings.load("quick")
    settings.supernet = {**settings.supernet, "channels": 4, "image_size": 8, "train_subset": 256,
                         "stage_epochs": [1], "batch_size": 32}
    settings.correlation_regions, settings.generations = 2, 1
    settings.evolution = {**settings.evolution, "regions_per_generation": 2}
    settings.evolution_seeds = [0]
    settings.baseline_seeds, settings.cost_stages, settings.cost_repeats, settings.cost_steps = [0], [1, 4], 2, 1
    settings.bo = {**settings.bo, "n_init": 1, "n_candidates": 20}
    settings.ground_truth = GroundTruthSettings(**{**asdict(settings.ground_truth), "channels": 4, "image_size": 8,
                                                   "train_images": 64, "valid_images": 32, "epochs": 1,
                                                   "batch_size": 32})
    settings.multicell_correlation_regions, settings.multicell_generations = 2, 1
    settings.multicell_region = {"open_slots": 1, "ops_per_slot": 2}
    settings.multicell_evolution_seeds, settings.multicell_baseline_seeds = [0], [0]
    monkeypatch.setattr(paper.Settings, "load", classmethod(lambda cls, scale: settings))
    monkeypatch.setattr(paper, "_pool", lambda device: LocalExecutor(workers=1))

    headline = Headline.read(paper.run("quick", tmp_path))
    assert len(headline.rows) == 5 and all(r.verdict in VERDICTS for r in headline.rows)
    assert all((tmp_path / f).is_file() for f in headline.figures) and len(headline.figures) == 10
    assert len(list((tmp_path / "runs" / "regions").glob("*/region.json"))) == 8
    info = json.loads((tmp_path / "run_info.json").read_text())
    assert (info["regions_trained"], info["regions_reused"], info["generations_restored"]) == (8, 0, 0)
    trained = info["architectures_trained"]
    # 2 regions x 2 members, the centres, RS and BO (2 evaluations each): some may coincide, none twice
    assert 0 < trained == len(list((tmp_path / "runs" / "ground_truth").glob("*.json"))) <= 4 + 2 + 4
    # cost vs depth: one cell pattern repeated in every stage, the same at every depth
    patterns = {cell for r in info["cost"]["rows"] for cell in r["region"].split("/")}
    assert len(patterns) == 1 and [r["region"].count("/") + 1 for r in info["cost"]["rows"]] == [1, 4]
    again = Headline.read(paper.run("quick", tmp_path))
    assert [r.ours for r in again.rows[:4]] == [r.ours for r in headline.rows[:4]]
    info = json.loads((tmp_path / "run_info.json").read_text())
    assert (info["regions_trained"], info["regions_reused"], info["generations_restored"]) == (0, 4, 2)
    assert info["architectures_trained"] == 0


# --------------------------------------------------------------------------------------------------
# Ground truth of multi-cell architectures (trained, cached)
# --------------------------------------------------------------------------------------------------
def _tiny_truth_settings(**changes) -> GroundTruthSettings:
    base = dict(channels=4, cells=1, image_size=8, batch_size=16, train_images=48, valid_images=32, split_seed=0,
                seed=0, epochs=1, learning_rate=0.05, lr_min=0.0, momentum=0.9, weight_decay=5e-4, grad_clip=5.0)
    return GroundTruthSettings(**{**base, **changes})


def test_multicell_network_uses_each_stages_cell(one_torch_thread):
    arch = MultiCellArch.from_ops([3] * 6 + [0] * 6 + [1] * 6, 3)  # conv / none / skip cells
    net = MultiCellNetwork(arch, C=4, N=2)
    cells = [m for m in net.layers if isinstance(m, NB201Cell)]
    assert len(cells) == 6
    kinds = [{type(op).__name__ for op in cell.edges} for cell in cells]
    assert kinds == [{"ReLUConvBN"}] * 2 + [{"Zero"}] * 2 + [{"Identity"}] * 2
    logits, aux = net(torch.zeros(2, 3, 16, 16))
    assert logits.shape == (2, 10) and aux is None
    # an all-'none' cell outputs zeros: the network's output then ignores its input image
    dead = MultiCellNetwork(MultiCellArch.from_ops([0] * 6, 1), C=4, N=1).eval()
    x = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(dead(x)[0], dead(torch.zeros_like(x))[0])


def test_ground_truth_cache_trains_once_per_setting(tmp_path, one_torch_thread):
    arch = MultiCellArch.from_ops([3, 1, 2, 0, 4, 3, 2, 2, 1, 3, 0, 1], 2)
    truth = TrainedGroundTruth(_tiny_truth_settings(), _tiny_arrays(), tmp_path)
    first = truth.query(arch)
    assert truth.trainings == 1 and 0 <= first["valid_acc"] <= 100 and 0 <= first["test_acc"] <= 100
    assert truth.query(arch) == first and truth.trainings == 1  # the second request does not retrain
    # a fresh object (another process, a later run) finds the same file
    again = TrainedGroundTruth(_tiny_truth_settings(), _tiny_arrays(), tmp_path)
    assert again.cached(arch) == first and again.query(arch) == first and again.trainings == 0
    # another setting, another architecture or other images: a different key, trained anew
    longer = TrainedGroundTruth(_tiny_truth_settings(epochs=2), _tiny_arrays(), tmp_path)
    assert longer.cached(arch) is None and longer.path(arch) != truth.path(arch)
    longer.query(arch)
    assert longer.trainings == 1 and len(list(tmp_path.glob("*.json"))) == 2
    other_arch = MultiCellArch.from_ops([3, 1, 2, 0, 4, 3, 2, 2, 1, 3, 0, 2], 2)
    assert truth.cached(other_arch) is None
    assert TrainedGroundTruth(_tiny_truth_settings(), _tiny_arrays(n=97), tmp_path).cached(arch) is None


def test_ground_truth_is_deterministic_and_refuses_foreign_files(tmp_path, one_torch_thread):
    arch = MultiCellArch.from_ops([3, 1, 2, 0, 4, 3], 1)
    a = TrainedGroundTruth(_tiny_truth_settings(), _tiny_arrays(), tmp_path / "a").query(arch)
    b = TrainedGroundTruth(_tiny_truth_settings(), _tiny_arrays(), tmp_path / "b").query(arch)
    assert (a["valid_acc"], a["test_acc"], a["valid_loss"]) == (b["valid_acc"], b["test_acc"], b["valid_loss"])
    truth = TrainedGroundTruth(_tiny_truth_settings(), _tiny_arrays(), tmp_path / "a")
    path = truth.path(arch)
    stored = json.loads(path.read_text())
    stored["identity"]["arch"] = "something else"
    path.write_text(json.dumps(stored))
    with pytest.raises(CheckpointError):
        truth.query(arch)
    path.write_text("{ torn")
    with pytest.raises(CheckpointError):
        truth.query(arch)
    assert path.read_text() == "{ torn"  # refused, not overwritten


@pytest.mark.parametrize("change", [{"epochs": 0}, {"channels": 0}, {"learning_rate": "fast"}, {"cells": 1.5},
                                    {"train_images": True}])
def test_ground_truth_bad_settings(change):
    with pytest.raises(ConfigError):
        _tiny_truth_settings(**change)


def test_ground_truth_settings_from_config():
    from algorithms import read_config_file

    values = dict(read_config_file("fade")["ground_truth"])
    GroundTruthSettings.from_config(values)
    with pytest.raises(ConfigError):
        GroundTruthSettings.from_config({**values, "epoch": 3})
    with pytest.raises(ConfigError):
        GroundTruthSettings.from_config({k: v for k, v in values.items() if k != "seed"})
    with pytest.raises(ConfigError):  # more images than the set holds
        TrainedGroundTruth(_tiny_truth_settings(train_images=90, valid_images=10), _tiny_arrays(), "/nonexistent")


# --------------------------------------------------------------------------------------------------
# Claim 2's verdict: one-sided tests across seeds
# --------------------------------------------------------------------------------------------------
def test_mean_ci():
    from reproduce.papers.fade import mean_ci

    mean, half = mean_ci([1.0, 2.0, 3.0])
    assert mean == 2.0 and half == pytest.approx(4.302653 * (1.0 / np.sqrt(3)), rel=1e-5)
    assert np.isnan(mean_ci([5.0])[1])


def test_search_verdict_rules():
    from reproduce.papers.fade import search_verdict

    baseline_low = [90.0, 90.5, 91.0, 90.2, 90.8, 90.1, 90.6, 90.3, 90.9, 90.4]
    baseline_high = [95.0 + 0.1 * i for i in range(10)]
    first, last = [80.0, 81.0, 79.0], [93.0, 93.5, 92.8]
    clear = search_verdict(first, last, baseline_low, baseline_low, 0.05)
    assert clear["verdict"] == "reproduced" and max(clear["p_improves"], clear["p_ahead_bo"]) < 0.05
    # beats random search only: partial
    assert search_verdict(first, last, baseline_low, baseline_high, 0.05)["verdict"] == "partial"
    # better means are not enough: a FaDE mean above the baselines' with overlapping seeds is not significant
    overlapping = search_verdict([92.0, 92.0, 92.0], [91.5, 93.5, 92.5], [92.0, 92.4, 92.6, 91.8, 92.3] * 2,
                                 [92.0, 92.4, 92.6, 91.8, 92.3] * 2, 0.05)
    assert overlapping["verdict"] == "not reached"
    assert np.mean([91.5, 93.5, 92.5]) > np.mean([92.0, 92.4, 92.6, 91.8, 92.3])
    # worse everywhere
    assert search_verdict(last, first, baseline_low, baseline_low, 0.05)["verdict"] == "not reached"
    # a single seed proves nothing: no paired test, and a one-sided Mann-Whitney p is at least 1/11 against 10
    single = search_verdict([80.0], [96.0], baseline_low, baseline_low, 0.05)
    assert np.isnan(single["p_improves"]) and single["p_ahead_random"] == pytest.approx(1 / 11)
    assert single["verdict"] == "not reached"
    # the threshold comes from the caller (fade.toml [verdicts])
    assert search_verdict(first, last, baseline_low, baseline_low, 1e-9)["verdict"] == "not reached"


def test_one_worker_runs_the_jobs_in_order_on_one_thread_and_restores_the_threads(monkeypatch):
    """``_pool`` on one worker: in this process, as a pool worker would (one thread), leaving the process as it was."""
    import torch

    from reproduce.papers import fade as paper

    monkeypatch.setattr(paper.os, "cpu_count", lambda: 1)
    threads_before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with paper._pool("cpu") as pool:
            assert list(pool.map(lambda job: (job, torch.get_num_threads()), [3, 1, 2])) == [(3, 1), (1, 1), (2, 1)]
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads_before)
