"""Sample efficiency of predictor-based NAS (Mauch et al. 2020, "Efficient Sampling for Predictor-Based
Neural Architecture Search", arXiv:2011.12043; only the abstract is available to us).

Predictor-based NAS scores candidate architectures with a proxy (a performance predictor) and evaluates the
maximisers. The candidate set is the lever the paper studies: scoring every architecture (``"full"``),
a uniform random subset (``"random_subset"``) or a *smart* subset -- the mutation neighbourhoods of the
current best (``"neighbourhood"``), an evolutionary pool of tournament parents' children
(``"evolution"``) or the cells nearest the current best by encoding distance (``"nearest"``). The strategies themselves live in :mod:`algorithms.predictor_search` (one search loop,
the candidate set a hyper-parameter); this module holds the measurement.

**Sample efficiency gain** (our definition; the paper's exact formula is not in the abstract). For a
target -- reaching the top ``x`` of the space (by the validation accuracy the search optimises) -- let
``Q_method(x)`` be the median number of queries a method needs until its best evaluated architecture is in
the top ``x``, over seeds. Random search drawing uniformly with replacement needs a geometric number of
queries with success probability ``p = hits / N``; its median is ``geom.ppf(0.5, p)``, exact, no
simulation. Then

    gain(x) = Q_random(x) / Q_method(x)

so a gain of 10 means the method needs a tenth of random search's queries. Runs that never reach the
target within their budget are *right-censored* at the budget: medians and quartiles are Kaplan-Meier
estimates (``scipy.stats.ecdf`` on ``CensoredData``); a median that the censored runs leave undetermined
is ``inf``: the method's median is beyond the budget, so its gain is only known to lie in
``(0, Q_random / budget]`` (:func:`gain_bounds`; comparisons between methods use these bounds, never the
0 that ``Q_random / inf`` gives). Two methods' query counts are compared with the log-rank test
(``scipy.stats.logrank``), which handles the censoring.

Random search here draws with replacement, as our ``random_search`` baseline does; the predictor-based
searches never repeat an architecture. Without replacement random search's median would be at most ~2 %
lower for the targets we use (top 0.1 % of 15,625: 663 instead of 677 queries), so the gains are that
much too high at most.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import stats

from nasrepro.errors import ConfigError


@dataclass(frozen=True)
class Target:
    """Reaching the top ``fraction`` of the architectures with data: ``valid >= threshold``."""

    fraction: float
    threshold: float
    hits: int  # architectures at or above the threshold (ties included)
    total: int

    @property
    def label(self) -> str:
        return f"top {100 * self.fraction:g} %"


def top_fraction_target(values: np.ndarray, fraction: float) -> Target:
    """The accuracy threshold of the best ``ceil(fraction * N)`` of ``values`` (all architectures with data)."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if not 0 < fraction <= 1:
        raise ConfigError(f"target fraction must be in (0, 1], got {fraction!r}")
    if len(values) == 0:
        raise ConfigError("no finite accuracies to define a target on")
    k = max(1, math.ceil(fraction * len(values)))
    threshold = float(np.sort(values)[::-1][k - 1])
    return Target(float(fraction), threshold, int((values >= threshold).sum()), len(values))


def queries_to_reach(incumbent_valid: np.ndarray, threshold: float) -> int | None:
    """1-based query at which the incumbent first reaches ``threshold``; None if it never does."""
    reached = np.flatnonzero(np.asarray(incumbent_valid) >= threshold)
    return int(reached[0]) + 1 if len(reached) else None


def random_search_quantile(target: Target, q: float = 0.5) -> float:
    """The ``q``-quantile of the queries uniform random search (with replacement) needs to hit the target."""
    return float(stats.geom.ppf(q, target.hits / target.total))


@dataclass(frozen=True)
class QueriesToTarget:
    """Queries to reach a target over seeds, with censoring: Kaplan-Meier median and quartiles, and a
    confidence interval for the median (``median_low``, ``median_high``; inf: beyond the budget)."""

    n_runs: int
    n_censored: int
    median: float
    q25: float
    q75: float
    median_low: float = math.nan
    median_high: float = math.nan

    @property
    def iqr(self) -> tuple[float, float]:
        return self.q25, self.q75


def queries_summary(reached: Sequence[int | None], budgets: Sequence[int],
                    confidence: float = 0.95) -> QueriesToTarget:
    """``reached[i]``: the query run ``i`` first hit the target, or None (censored at ``budgets[i]``).

    The median's confidence interval inverts scipy's pointwise log-log band of the Kaplan-Meier CDF (as R's
    ``survfit`` does for its median): its bounds are where the band's upper and lower edges reach 1/2."""
    if len(reached) != len(budgets) or not reached:
        raise ConfigError("queries_summary needs one budget per run and at least one run")
    if not 0 < confidence < 1:
        raise ConfigError(f"confidence must be in (0, 1), got {confidence!r}")
    hit = np.array([r for r in reached if r is not None], dtype=np.float64)
    censored = np.array([b for r, b in zip(reached, budgets) if r is None], dtype=np.float64)
    if len(hit) == 0:
        return QueriesToTarget(len(reached), len(censored), math.inf, math.inf, math.inf, math.inf, math.inf)
    cdf = stats.ecdf(stats.CensoredData(uncensored=hit, right=censored)).cdf
    with warnings.catch_warnings():
        # the band is undefined where the CDF is 0 or 1 (scipy warns and gives NaN); there it is the estimate
        warnings.simplefilter("ignore", RuntimeWarning)
        band = cdf.confidence_interval(confidence, method="log-log")
    upper = np.where(np.isnan(band.high.probabilities), cdf.probabilities, band.high.probabilities)
    lower = np.where(np.isnan(band.low.probabilities), cdf.probabilities, band.low.probabilities)

    def quantile(probabilities: np.ndarray, p: float) -> float:
        # the smallest observed count at which the (estimated or band) CDF reaches p (inf: not determined)
        above = np.flatnonzero(probabilities >= p - 1e-12)
        return float(cdf.quantiles[above[0]]) if len(above) else math.inf

    estimate = cdf.probabilities
    return QueriesToTarget(len(reached), len(censored), quantile(estimate, 0.5), quantile(estimate, 0.25),
                           quantile(estimate, 0.75), quantile(upper, 0.5), quantile(lower, 0.5))


def sample_efficiency_gain(target: Target, summary: QueriesToTarget) -> float:
    """Random search's median queries over the method's (inf where the method's median is undetermined
    gives 0: use :func:`gain_upper_bound` to report it)."""
    return random_search_quantile(target) / summary.median


def gain_upper_bound(target: Target, budget: int) -> float:
    """The largest gain a method whose median is censored at ``budget`` could have."""
    return random_search_quantile(target) / budget


@dataclass(frozen=True)
class GainBounds:
    """What is known about a method's gain: exactly ``low == high`` when its median was observed;
    ``(0, high]`` when the median lies beyond the budget (censored)."""

    low: float
    high: float

    @property
    def censored(self) -> bool:
        return self.low != self.high

    def at_least(self, factor: float, other: "GainBounds") -> bool:
        """Established (whatever the censored medians turn out to be) that this gain >= factor x other's."""
        return self.low >= factor * other.high

    def exceeds(self, other: "GainBounds") -> bool:
        """Established that this gain is strictly larger than the other's."""
        return self.low > other.high


def gain_interval(target: Target, summary: QueriesToTarget, budget: int) -> tuple[float, float]:
    """The gain's confidence interval from the median's (:func:`queries_summary`): it starts at 0 where
    the median's upper confidence bound lies beyond the budget, and ends at most at ``Q_random / budget``
    where even its lower one does."""
    rs = random_search_quantile(target)
    return rs / summary.median_high, rs / min(summary.median_low, budget)


def gain_bounds(target: Target, summary: QueriesToTarget, budget: int) -> GainBounds:
    """The gain of a method whose runs had ``budget`` queries (see :class:`GainBounds`)."""
    if math.isinf(summary.median):
        return GainBounds(0.0, gain_upper_bound(target, budget))
    gain = sample_efficiency_gain(target, summary)
    return GainBounds(gain, gain)


def logrank_p(reached_a: Sequence[int | None], budgets_a: Sequence[int], reached_b: Sequence[int | None],
              budgets_b: Sequence[int]) -> float:
    """Two-sided log-rank p-value that two methods need the same number of queries (censoring handled)."""

    def data(reached: Sequence[int | None], budgets: Sequence[int]) -> stats.CensoredData:
        return stats.CensoredData(uncensored=[r for r in reached if r is not None],
                                  right=[b for r, b in zip(reached, budgets) if r is None])

    a, b = data(reached_a, budgets_a), data(reached_b, budgets_b)
    if a.num_censored() == len(a) and b.num_censored() == len(b):
        return 1.0  # neither ever reached the target: no evidence of a difference
    return float(stats.logrank(a, b).pvalue)
