"""Algorithms behind one registry: query-based optimizers, one-shot optimizers and predictors.

``make_optimizer(name, space, rng, pool, overrides)`` builds a registered optimizer with the
hyper-parameters of its config file (``algorithms/configs/<config>.toml``), overridden by ``overrides``.
Every key must be a real constructor argument: an unknown or misspelled key is a :class:`ConfigError`.
"""
from __future__ import annotations

import inspect
import tomllib
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from nasrepro.errors import ConfigError

CONFIG_DIR = Path(__file__).parent / "configs"


@dataclass(frozen=True)
class Entry:
    target: str  # "module:Class"
    kind: str  # "optimizer" | "oneshot" | "predictor"
    config: str  # config file stem in algorithms/configs
    section: str  # table inside that file holding this algorithm's hyper-parameters


REGISTRY: dict[str, Entry] = {
    "random_search": Entry("algorithms.baselines:RandomSearch", "optimizer", "baselines", "random_search"),
    "regularized_evolution": Entry("algorithms.baselines:RegularizedEvolution", "optimizer", "baselines",
                                   "regularized_evolution"),
    "local_search": Entry("algorithms.baselines:LocalSearch", "optimizer", "baselines", "local_search"),
    "deltanas": Entry("algorithms.deltanas:DeltaNAS", "optimizer", "deltanas", "deltanas"),
    "bananas": Entry("algorithms.predictor_search:PredictorGuidedSearch", "optimizer", "predictor_search", "bananas"),
    "npenas": Entry("algorithms.predictor_search:PredictorGuidedSearch", "optimizer", "predictor_search", "npenas"),
    "neural_predictor": Entry("algorithms.predictor_search:PredictorGuidedSearch", "optimizer", "predictor_search",
                              "neural_predictor"),
    "drnas": Entry("algorithms.drnas:DrNAS", "oneshot", "drnas", "drnas_nb201"),
    "darts": Entry("algorithms.oneshot_baselines:DARTS", "oneshot", "drnas", "darts_nb201"),
    "gdas": Entry("algorithms.oneshot_baselines:GDAS", "oneshot", "drnas", "gdas_nb201"),
    "mlp_ensemble": Entry("algorithms.predictors:MLPEnsemble", "predictor", "predictors", "mlp_ensemble"),
    "gcn": Entry("algorithms.predictors:GCNPredictor", "predictor", "predictors", "gcn"),
    "gp": Entry("algorithms.predictors:GaussianProcess", "predictor", "predictors", "gp"),
    "gbt": Entry("algorithms.predictors:GradientBoostedTrees", "predictor", "predictors", "gbt"),
    "delta_predictor": Entry("algorithms.deltanas:AnchoredDeltaPredictor", "predictor", "deltanas",
                             "delta_predictor"),
}


#: constructor arguments the factories pass themselves (never from a config file)
_PASSED_BY_FACTORY = {"optimizer": {"space", "rng", "pool"}, "predictor": {"space", "rng"}, "oneshot": {"rng"}}


def names(kind: str | None = None) -> list[str]:
    return [n for n, e in REGISTRY.items() if kind is None or e.kind == kind]


def entry(name: str) -> Entry:
    if name not in REGISTRY:
        raise ConfigError(f"unknown algorithm {name!r}; choose from {', '.join(REGISTRY)}")
    return REGISTRY[name]


def load_config(name: str) -> dict:
    """The full config file of algorithm ``name`` (``[meta]`` with source and known deviations, and the
    algorithm's own section)."""
    return read_config_file(entry(name).config)


def read_config_file(stem: str) -> dict:
    """``algorithms/configs/<stem>.toml`` as a dict; a missing file is a :class:`ConfigError`."""
    path = CONFIG_DIR / f"{stem}.toml"
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"no config file {path}") from None


def resolve_hparams(name: str, overrides: dict | None = None) -> dict:
    """The algorithm's hyper-parameters: its config section, then ``overrides``; checked against the
    constructor so that no key is silently ignored."""
    e = entry(name)
    config = load_config(name)
    if e.section not in config:
        raise ConfigError(f"{e.config}.toml has no [{e.section}] section")
    hparams = dict(config[e.section])
    hparams.update(overrides or {})
    cls = algorithm_class(name)
    accepted = constructor_keys(cls) - {"self"} - _PASSED_BY_FACTORY[e.kind]
    unknown = sorted(set(hparams) - accepted)
    if unknown:
        raise ConfigError(f"{name}: unknown hyper-parameter(s) {', '.join(unknown)}; "
                          f"accepted: {', '.join(sorted(accepted))}")
    return hparams


def constructor_keys(cls: type) -> set[str]:
    """Keyword names the constructor accepts, following ``**kwargs`` up to the base classes."""
    accepted: set[str] = set()
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        params = inspect.signature(klass.__init__).parameters
        accepted |= {n for n, p in params.items() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}
        if not any(p.kind == p.VAR_KEYWORD for p in params.values()):
            break
    return accepted


def algorithm_class(name: str) -> type:
    module, cls = entry(name).target.split(":")
    return getattr(import_module(module), cls)


def make_optimizer(name: str, space: Any, rng: np.random.Generator, pool: Sequence[Any] | None = None,
                   overrides: dict | None = None) -> Any:
    e = entry(name)
    if e.kind != "optimizer":
        raise ConfigError(f"{name} is a {e.kind}, not a query-based optimizer")
    return algorithm_class(name)(space=space, rng=rng, pool=pool, **resolve_hparams(name, overrides))


def make_predictor(name: str, space: Any, rng: np.random.Generator, overrides: dict | None = None) -> Any:
    e = entry(name)
    if e.kind != "predictor":
        raise ConfigError(f"{name} is a {e.kind}, not a predictor")
    return algorithm_class(name)(space=space, rng=rng, **resolve_hparams(name, overrides))
