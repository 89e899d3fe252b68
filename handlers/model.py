"""The in-function fraud model: a scorecard with pairwise terms, evaluated in pure Python.

Format (`fraud-pipeline-scorecard`, version 2; version 1 is the same without
`interactions`) -- a JSON document written by `python -m fraud_pipeline.backtest train`:

    {"format": "fraud-pipeline-scorecard", "format_version": 2, "version": "...",
     "intercept": -6.1,
     "features": [{"name": "card_amount_vs_30d_mean", "edges": [0.5, 1.8, 3.2],
                   "weights": [-0.2, 0.0, 0.9, 2.4], "reference": 0.05}, ...],
     "interactions": [{"names": ["hour", "card_hour_share_30d"], "edges": [[5.5], [0.02, 0.2]],
                       "weights": [[0.1, 0.0, -0.1], [1.9, 0.3, -0.2]], "reference": 0.01}, ...],
     "thresholds": {"review": 0.31, "block": 0.72, "chosen_by": "..."},
     "card": {...model card: data period, fraud rate, validation figures, how to reproduce...}}

A feature value x falls in bin `bisect_right(edges, x)`; the log-odds of fraud
is the intercept plus one weight per feature plus one weight per interaction
(the cell of its two features' bins: `weights[bin_a][bin_b]`), and the risk is
its logistic. Each weight minus its term's `reference` (its average weight on
the training data) is how much that term moved this transaction's risk (an
interaction's move is shared equally by its two features): the features with
the largest positive moves are the alert's explanation.

Why this family: every term is a readable table, one- or two-dimensional (a
risk team can review and sign it off, as credit scorecards are); evaluation is
a few dozen bisects (microseconds, no native library in the Lambda package);
the bins learn the step-shaped effects card fraud has (an amount far above the
card's own normal, a merchant with confirmed fraud) and the few pairwise tables
the combinations an additive model cannot (a large amount *at an hour the card
never uses*). Gradient-boosted trees were measured too: a little better on the
synthetic history, several times slower in pure Python and far less readable.

`load_model` checks everything: an artifact that is not exactly this shape
raises `ModelError` naming the problem, and the caller keeps scoring with
the rules (and counts `ModelLoadFailed`).
"""

from __future__ import annotations

import json
import math
from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from .features import FEATURE_NAMES

FORMAT = "fraud-pipeline-scorecard"
FORMAT_VERSION = 2
#: Versions `parse_model` accepts (1: no interactions).
FORMAT_VERSIONS = (1, 2)
MAX_BINS = 256
MAX_INTERACTIONS = 64
#: How many features an explanation names.
TOP_FEATURES = 2


class ModelError(ValueError):
    """The artifact is not a valid scorecard; the message says what is wrong."""


@dataclass(frozen=True)
class Term:
    name: str
    edges: tuple[float, ...]
    weights: tuple[float, ...]
    reference: float


@dataclass(frozen=True)
class Interaction:
    names: tuple[str, str]
    edges: tuple[tuple[float, ...], tuple[float, ...]]
    #: Row-major: weight of cell (i, j) at i * (len(edges[1]) + 1) + j.
    weights: tuple[float, ...]
    reference: float


@dataclass(frozen=True)
class Thresholds:
    review: float
    block: float


@dataclass(frozen=True)
class Scorecard:
    version: str
    intercept: float
    terms: tuple[Term, ...]
    thresholds: Thresholds
    card: Mapping[str, Any]
    interactions: tuple[Interaction, ...] = ()

    def __post_init__(self) -> None:
        # flat tuples for the hot loop (attribute lookups cost more than the bisects)
        mains = tuple((t.name, t.edges, t.weights, t.reference) for t in self.terms)
        pairs = tuple((i.names[0], i.names[1], i.edges[0], i.edges[1], len(i.edges[1]) + 1, i.weights, i.reference)
                      for i in self.interactions)
        names = [t.name for t in self.terms] + [n for i in self.interactions for n in i.names]
        object.__setattr__(self, "_mains", mains)
        object.__setattr__(self, "_pairs", pairs)
        object.__setattr__(self, "_fetch", itemgetter(*names) if len(names) > 1 else (lambda f: (f[names[0]],)))
        object.__setattr__(self, "_names", tuple(names))
        object.__setattr__(self, "_tables", tuple((m[1], m[2]) for m in mains))
        object.__setattr__(self, "_pair_tables", tuple((p[2], p[3], p[4], p[5]) for p in pairs))

    @property
    def feature_names(self) -> tuple[str, ...]:
        names: list[str] = []
        for n in self._names:  # type: ignore[attr-defined]
            if n not in names:
                names.append(n)
        return tuple(names)

    def _values(self, features: Mapping[str, float]) -> tuple[float, ...]:
        try:
            return self._fetch(features)  # type: ignore[attr-defined]
        except KeyError:  # a feature the caller did not compute counts as 0
            return tuple(features.get(n, 0.0) for n in self._names)  # type: ignore[attr-defined]

    def risk(self, features: Mapping[str, float]) -> float:
        """The risk in [0, 1] alone (the hot path: no explanation)."""
        values = self._values(features)
        logit = self.intercept
        k = 0
        for edges, weights in self._tables:  # type: ignore[attr-defined]
            logit += weights[bisect_right(edges, values[k])]
            k += 1
        for ea, eb, width, weights in self._pair_tables:  # type: ignore[attr-defined]
            logit += weights[bisect_right(ea, values[k]) * width + bisect_right(eb, values[k + 1])]
            k += 2
        return _logistic(logit)

    def explain(self, features: Mapping[str, float]) -> tuple[str, ...]:
        """The top contributing feature names, most first (each term's weight minus its reference)."""
        values = self._values(features)
        moved: dict[str, float] = {}
        k = 0
        for name, edges, weights, reference in self._mains:  # type: ignore[attr-defined]
            weight = weights[bisect_right(edges, values[k])]
            k += 1
            if weight > reference:
                moved[name] = weight - reference
        for a, b, ea, eb, width, weights, reference in self._pairs:  # type: ignore[attr-defined]
            weight = weights[bisect_right(ea, values[k]) * width + bisect_right(eb, values[k + 1])]
            k += 2
            if weight > reference:
                half = (weight - reference) / 2
                moved[a] = moved.get(a, 0.0) + half
                moved[b] = moved.get(b, 0.0) + half
        top = sorted(moved.items(), key=_by_move, reverse=True)[:TOP_FEATURES]
        return tuple(name for name, _ in top)

    def evaluate(self, features: Mapping[str, float]) -> tuple[float, tuple[str, ...]]:
        """(risk in [0, 1], the top contributing feature names, most first)."""
        return self.risk(features), self.explain(features)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "format": FORMAT, "format_version": FORMAT_VERSION if self.interactions else 1, "version": self.version,
            "intercept": self.intercept,
            "features": [{"name": t.name, "edges": list(t.edges), "weights": list(t.weights),
                          "reference": t.reference} for t in self.terms],
        }
        if self.interactions:
            out["interactions"] = [
                {"names": list(i.names), "edges": [list(i.edges[0]), list(i.edges[1])],
                 "weights": [list(i.weights[r * (len(i.edges[1]) + 1):(r + 1) * (len(i.edges[1]) + 1)])
                             for r in range(len(i.edges[0]) + 1)],
                 "reference": i.reference} for i in self.interactions]
        out["thresholds"] = {"review": self.thresholds.review, "block": self.thresholds.block}
        out["card"] = dict(self.card)
        return out


def _by_move(item: tuple[str, float]) -> tuple[float, str]:
    return item[1], item[0]


def _logistic(logit: float) -> float:
    if logit >= 0:
        return 1.0 / (1.0 + math.exp(-logit))
    e = math.exp(logit)
    return e / (1.0 + e)


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ModelError(f"{where} must be a finite number")
    return float(value)


def parse_model(data: Any) -> Scorecard:
    """Validate a decoded artifact and build the scorecard."""
    if not isinstance(data, dict):
        raise ModelError("the model must be a JSON object")
    if data.get("format") != FORMAT or data.get("format_version") not in FORMAT_VERSIONS or \
            isinstance(data.get("format_version"), bool):
        raise ModelError(f"format must be {FORMAT!r} version {' or '.join(map(str, FORMAT_VERSIONS))}")
    version = data.get("version")
    if not isinstance(version, str) or not 0 < len(version) <= 128:
        raise ModelError("version must be a string of 1-128 characters")
    intercept = _number(data.get("intercept"), "intercept")
    raw_terms = data.get("features")
    if not isinstance(raw_terms, list) or not raw_terms:
        raise ModelError("features must be a non-empty list")
    terms: list[Term] = []
    seen: set[str] = set()
    for i, raw in enumerate(raw_terms):
        where = f"features[{i}]"
        if not isinstance(raw, dict):
            raise ModelError(f"{where} must be an object")
        name = raw.get("name")
        if name not in FEATURE_NAMES:
            raise ModelError(f"{where}.name must be one of the computed features ({', '.join(FEATURE_NAMES)})")
        if name in seen:
            raise ModelError(f"{where}.name {name!r} appears twice")
        seen.add(name)
        edges, weights = raw.get("edges"), raw.get("weights")
        if not isinstance(edges, list) or not isinstance(weights, list) or len(weights) != len(edges) + 1:
            raise ModelError(f"{where} needs edges (a list) and one more weight than edges")
        if len(weights) > MAX_BINS:
            raise ModelError(f"{where} has more than {MAX_BINS} bins")
        e = _edges(edges, f"{where}.edges")
        w = tuple(_number(x, f"{where}.weights") for x in weights)
        terms.append(Term(name, e, w, _number(raw.get("reference", 0.0), f"{where}.reference")))
    interactions = _interactions(data)
    thresholds = data.get("thresholds")
    if not isinstance(thresholds, dict):
        raise ModelError("thresholds must be an object with review and block")
    review = _number(thresholds.get("review"), "thresholds.review")
    block = _number(thresholds.get("block"), "thresholds.block")
    if not 0 < review < block < 1:
        raise ModelError("thresholds must satisfy 0 < review < block < 1")
    card = data.get("card")
    if not isinstance(card, dict):
        card = {}
    return Scorecard(version, intercept, tuple(terms), Thresholds(review, block), card, interactions)


def _edges(edges: list[Any], where: str) -> tuple[float, ...]:
    e = tuple(_number(x, where) for x in edges)
    if any(b <= a for a, b in zip(e, e[1:])):
        raise ModelError(f"{where} must be strictly increasing")
    return e


def _interactions(data: dict[str, Any]) -> tuple[Interaction, ...]:
    raw_list = data.get("interactions", [])
    if data.get("format_version") == 1 and raw_list:
        raise ModelError("interactions need format_version 2")
    if not isinstance(raw_list, list) or len(raw_list) > MAX_INTERACTIONS:
        raise ModelError(f"interactions must be a list of at most {MAX_INTERACTIONS} objects")
    out: list[Interaction] = []
    seen: set[tuple[str, str]] = set()
    for i, raw in enumerate(raw_list):
        where = f"interactions[{i}]"
        if not isinstance(raw, dict):
            raise ModelError(f"{where} must be an object")
        names = raw.get("names")
        if not isinstance(names, list) or len(names) != 2 or names[0] == names[1] or \
                not all(n in FEATURE_NAMES for n in names):
            raise ModelError(f"{where}.names must be two different computed features")
        pair = (names[0], names[1])
        if pair in seen or pair[::-1] in seen:
            raise ModelError(f"{where}.names {names!r} appears twice")
        seen.add(pair)
        edges = raw.get("edges")
        if not isinstance(edges, list) or len(edges) != 2 or not all(isinstance(e, list) for e in edges):
            raise ModelError(f"{where}.edges must be two lists (one per feature)")
        ea, eb = _edges(edges[0], f"{where}.edges[0]"), _edges(edges[1], f"{where}.edges[1]")
        rows, width = len(ea) + 1, len(eb) + 1
        if rows * width > MAX_BINS * 4:
            raise ModelError(f"{where} has more than {MAX_BINS * 4} cells")
        weights = raw.get("weights")
        if not isinstance(weights, list) or len(weights) != rows or \
                not all(isinstance(r, list) and len(r) == width for r in weights):
            raise ModelError(f"{where}.weights must be {rows} rows of {width} weights (one more than each feature's edges)")
        flat = tuple(_number(x, f"{where}.weights") for r in weights for x in r)
        out.append(Interaction(pair, (ea, eb), flat, _number(raw.get("reference", 0.0), f"{where}.reference")))
    return tuple(out)


def load_model(raw: bytes | str) -> Scorecard:
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ModelError(f"the model is not valid JSON: {exc}") from None
    return parse_model(data)


def model_score(risk: float, thresholds: Thresholds, review_score: int, block_score: int) -> int:
    """Map a risk to the 0-100 score scale so the model's thresholds land on the rules' thresholds.

    Piecewise linear and increasing: [0, review] -> [0, review_score],
    [review, block] -> [review_score, block_score], [block, 1] -> [block_score, 100].
    """
    if risk < thresholds.review:
        value = review_score * risk / thresholds.review
    elif risk < thresholds.block:
        value = review_score + (block_score - review_score) * (risk - thresholds.review) / (thresholds.block - thresholds.review)
    else:
        value = block_score + (100 - block_score) * (risk - thresholds.block) / (1 - thresholds.block)
    return max(0, min(100, int(value)))


def risk_of_score(score: int, thresholds: Thresholds, review_score: int, block_score: int) -> float:
    """The inverse of `model_score` (for ranking a rules score on the model's risk scale)."""
    if score <= 0:
        return 0.0
    if score < review_score:
        return thresholds.review * score / review_score
    if score < block_score:
        return thresholds.review + (thresholds.block - thresholds.review) * (score - review_score) / (block_score - review_score)
    return min(1.0, thresholds.block + (1 - thresholds.block) * (score - block_score) / (100 - block_score))
