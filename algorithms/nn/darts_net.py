"""The DARTS-space evaluation network (``NetworkCIFAR`` of the DARTS / DrNAS code), built from a genotype.

A stem 3x3 conv with ``3*C`` channels, then ``layers`` cells; the cells at 1/3 and 2/3 depth reduce the
resolution and double the channels. Each cell takes the outputs of the two previous cells, preprocesses
them to ``C`` channels, and computes ``len(ops)//2`` nodes, each the sum of two ops on earlier states; its
output is the concatenation of the ``concat`` states. An auxiliary head sits after the cell at 2/3 depth
(training only), and drop-path zeroes whole non-identity edges per sample during training.

A genotype is anything with ``normal``/``reduce`` lists of ``(op, input)`` pairs and optionally
``normal_concat``/``reduce_concat`` (default: every intermediate node, as ``benchmarks.darts_space.DartsArch``
implies), or the DARTS string
``Genotype(normal=[('sep_conv_3x3', 0), ...], normal_concat=range(2, 6), reduce=[...], reduce_concat=[...])``.
"""
from __future__ import annotations

import ast
from typing import Any, NamedTuple, Sequence

import torch
from torch import nn

from algorithms.nn.ops import OPS, FactorizedReduce, Identity, ReLUConvBN
from nasrepro.errors import ConfigError, InvalidArchError


class Genotype(NamedTuple):
    normal: tuple[tuple[str, int], ...]
    normal_concat: tuple[int, ...]
    reduce: tuple[tuple[str, int], ...]
    reduce_concat: tuple[int, ...]


def as_genotype(arch: Any) -> Genotype:
    """A validated :class:`Genotype` from a genotype-like object or a DARTS genotype string."""
    if isinstance(arch, str):
        return parse_genotype(arch)
    try:
        normal = tuple((str(op), int(i)) for op, i in arch.normal)
        reduce = tuple((str(op), int(i)) for op, i in arch.reduce)
        # without concat lists (DartsArch), a cell outputs all its intermediate nodes, as in DARTS
        genotype = Genotype(normal, _concat(arch, "normal_concat", normal),
                            reduce, _concat(arch, "reduce_concat", reduce))
    except (AttributeError, TypeError, ValueError) as exc:
        raise InvalidArchError(f"not a DARTS genotype: {arch!r} ({exc})") from exc
    _validate(genotype)
    return genotype


def _concat(arch: Any, field: str, ops: tuple) -> tuple[int, ...]:
    concat = getattr(arch, field, None)
    return tuple(range(2, 2 + len(ops) // 2)) if concat is None else tuple(int(i) for i in concat)


def parse_genotype(text: str) -> Genotype:
    """Parse ``Genotype(normal=[...], normal_concat=..., reduce=[...], reduce_concat=...)`` without eval."""
    try:
        call = ast.parse(text.strip(), mode="eval").body
    except SyntaxError as exc:
        raise InvalidArchError(f"unparsable genotype string {text!r}") from exc
    if not isinstance(call, ast.Call) or call.args or not call.keywords:
        raise InvalidArchError(f"expected Genotype(normal=..., normal_concat=..., reduce=..., reduce_concat=...), "
                               f"got {text!r}")
    fields = {}
    for kw in call.keywords:
        node = kw.value
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "range"
                and not node.keywords):
            try:
                fields[kw.arg] = list(range(*[ast.literal_eval(a) for a in node.args]))
            except (ValueError, TypeError) as exc:
                raise InvalidArchError(f"bad range in genotype string {text!r}") from exc
        else:
            try:
                fields[kw.arg] = ast.literal_eval(node)
            except ValueError as exc:
                raise InvalidArchError(f"bad value for {kw.arg} in genotype string {text!r}") from exc
    if set(fields) != set(Genotype._fields):
        raise InvalidArchError(f"genotype string needs exactly {', '.join(Genotype._fields)}; got {sorted(fields)}")
    return as_genotype(type("ParsedGenotype", (), fields)())


def _validate(genotype: Genotype) -> None:
    for kind, ops, concat in (("normal", genotype.normal, genotype.normal_concat),
                              ("reduce", genotype.reduce, genotype.reduce_concat)):
        if not ops or len(ops) % 2:
            raise InvalidArchError(f"{kind} cell needs an even, non-zero number of (op, input) pairs")
        for k, (op, src) in enumerate(ops):
            if op not in OPS:
                raise InvalidArchError(f"{kind} cell: unknown op {op!r}; DARTS ops are {', '.join(OPS)}")
            if not 0 <= src < 2 + k // 2:
                raise InvalidArchError(f"{kind} cell: edge {k} reads state {src}, which does not exist yet")
        n_states = 2 + len(ops) // 2
        if not concat or any(not 0 <= i < n_states for i in concat):
            raise InvalidArchError(f"{kind}_concat {list(concat)} must name states in 0..{n_states - 1}")


def drop_path(x: torch.Tensor, drop_prob: float, generator: torch.Generator) -> torch.Tensor:
    """Zero each sample's tensor with probability ``drop_prob`` and rescale the kept ones."""
    keep = 1.0 - drop_prob
    mask = torch.empty((x.shape[0], 1, 1, 1), device=x.device, dtype=x.dtype).bernoulli_(keep, generator=generator)
    return x / keep * mask


class Cell(nn.Module):
    def __init__(self, ops: Sequence[tuple[str, int]], concat: Sequence[int], C_prev_prev: int, C_prev: int,
                 C: int, reduction: bool, reduction_prev: bool):
        super().__init__()
        self.reduction = reduction
        # the state two cells back has twice the resolution if the previous cell reduced
        self.preprocess0 = (FactorizedReduce(C_prev_prev, C) if reduction_prev
                            else ReLUConvBN(C_prev_prev, C, 1, 1, 0))
        self.preprocess1 = ReLUConvBN(C_prev, C, 1, 1, 0)
        # in a reduction cell only the edges from the two inputs stride
        self.ops = nn.ModuleList(OPS[name](C, 2 if reduction and src < 2 else 1, True) for name, src in ops)
        self.inputs = [src for _, src in ops]
        self.concat = list(concat)
        self.multiplier = len(self.concat)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, drop_prob: float,
                generator: torch.Generator | None) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for node in range(len(self.ops) // 2):
            total = 0
            for k in (2 * node, 2 * node + 1):
                h = self.ops[k](states[self.inputs[k]])
                if self.training and drop_prob > 0 and not isinstance(self.ops[k], Identity):
                    h = drop_path(h, drop_prob, generator)
                total = total + h
            states.append(total)
        return torch.cat([states[i] for i in self.concat], dim=1)


class AuxiliaryHeadCIFAR(nn.Module):
    """Classifier on the 8x8 maps after the 2/3-depth cell (DARTS). At the 16-px quick scale the maps are
    4x4, too small for the 5x5 pooling, so the pooling becomes adaptive to the same 2x2 output."""

    def __init__(self, C: int, num_classes: int, feature_size: int):
        super().__init__()
        pool = (nn.AvgPool2d(5, stride=3, padding=0, count_include_pad=False) if feature_size >= 5
                else nn.AdaptiveAvgPool2d(2))
        self.features = nn.Sequential(
            nn.ReLU(inplace=True), pool,
            nn.Conv2d(C, 128, 1, bias=False), nn.BatchNorm2d(128), nn.ReLU(inplace=True),
            nn.Conv2d(128, 768, 2, bias=False), nn.BatchNorm2d(768), nn.ReLU(inplace=True),
        )
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


class NetworkCIFAR(nn.Module):
    """The DARTS evaluation network for 32x32 (or smaller) images; ``forward`` returns (logits, aux logits
    or None). Set ``drop_path_prob`` and ``drop_path_generator`` before training with drop-path."""

    def __init__(self, genotype: Any, C: int, num_classes: int, layers: int, auxiliary: bool,
                 image_size: int = 32, stem_multiplier: int = 3):
        super().__init__()
        genotype = as_genotype(genotype)
        if layers < 3:
            raise ConfigError(f"NetworkCIFAR needs at least 3 layers (two reductions), got {layers}")
        self.genotype = genotype
        self.layers = layers
        self.auxiliary = auxiliary
        self.drop_path_prob = 0.0
        self.drop_path_generator: torch.Generator | None = None
        self.aux_position = 2 * layers // 3
        C_curr = stem_multiplier * C
        self.stem = nn.Sequential(nn.Conv2d(3, C_curr, 3, padding=1, bias=False), nn.BatchNorm2d(C_curr))
        C_prev_prev, C_prev, C_curr = C_curr, C_curr, C
        self.cells = nn.ModuleList()
        reduction_prev = False
        size = image_size
        for i in range(layers):
            reduction = i in (layers // 3, 2 * layers // 3)
            if reduction:
                C_curr *= 2
                size = (size + 1) // 2
            ops, concat = ((genotype.reduce, genotype.reduce_concat) if reduction
                           else (genotype.normal, genotype.normal_concat))
            cell = Cell(ops, concat, C_prev_prev, C_prev, C_curr, reduction, reduction_prev)
            self.cells.append(cell)
            reduction_prev = reduction
            C_prev_prev, C_prev = C_prev, cell.multiplier * C_curr
            if i == self.aux_position:
                C_aux, size_aux = C_prev, size
        self.auxiliary_head = AuxiliaryHeadCIFAR(C_aux, num_classes, size_aux) if auxiliary else None
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(C_prev, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        if self.training and self.drop_path_prob > 0 and self.drop_path_generator is None:
            raise ConfigError("drop-path is on but the network has no drop_path_generator")
        logits_aux = None
        s0 = s1 = self.stem(x)
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob, self.drop_path_generator)
            if i == self.aux_position and self.auxiliary_head is not None and self.training:
                logits_aux = self.auxiliary_head(s1)
        logits = self.classifier(self.global_pooling(s1).flatten(1))
        return logits, logits_aux


def build_network(genotype: Any, *, init_channels: int, layers: int, num_classes: int, auxiliary: bool,
                  seed: int, image_size: int = 32) -> NetworkCIFAR:
    """A :class:`NetworkCIFAR` whose initial weights depend only on ``seed`` (the global torch RNG is forked
    and restored, so building a network leaves it untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return NetworkCIFAR(genotype, init_channels, num_classes, layers, auxiliary, image_size)


def count_parameters_mb(model: nn.Module) -> float:
    """Parameters in millions, auxiliary head excluded (as the DARTS-family papers report them)."""
    return sum(p.numel() for name, p in model.named_parameters() if "auxiliary" not in name) / 1e6
