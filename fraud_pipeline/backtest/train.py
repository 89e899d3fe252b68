"""`train`: learn a scorecard from labelled history, honestly in time.

1. Replay the file up to the end of `--until` with the rules only, computing
   every transaction's features as the function would have at its own time
   (labels become known `--label-delay-days` after their transaction).
2. Learn only from transactions whose label was known by the end of `--until`
   (`timestamp + delay <= until`): later ones feed the features but their
   labels do not exist yet.
3. Split those in time: the last `VALIDATION_SHARE` (at least a week) is the
   validation period; fit on the earlier part, *including* the first weeks
   of the file, where the state is still filling up and every card and
   merchant looks new: a pipeline starts that way too (a new deployment, a new
   merchant), and a model that never saw a cold state flags most of it -- on a
   generated cold start, leaving out the first 14 days gave 37-70 % alert
   rates for the first ten days instead of 0-5 % (`WARMUP_DAYS` > 0 restores
   that choice).
4. Bins per feature: a depth-limited decision tree on that feature alone
   (supervised binning, as for credit scorecards). Pairs: the `MAX_PAIRS`
   feature pairs that depth-2 gradient boosting on the fit part splits on
   together most (by gain), each a coarse 2-D table. Weights: L2 logistic
   regression on the one-hot bins and cells, the regularisation strength with
   the best validation average precision. Terms whose weights barely vary
   are dropped (fewer lookups per transaction).
5. Decision thresholds, on the validation period, on the decisions the system
   will really make (rules OR model): `review` at the best F1 among thresholds
   whose alert rate stays within `--max-alert-rate`; `block` at the lowest
   risk whose alerts are at least `BLOCK_PRECISION` precise (else the top
   tenth of the review alerts).
6. Refit on all labelled rows with the chosen strength; thresholds are carried
   over at the same validation alert rates. The model card records all of it.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from handlers.features import DAY_MS, FEATURE_NAMES
from handlers.model import FORMAT, FORMAT_VERSION, parse_model
from handlers.scoring import Scorer

from .replay import replay

VALIDATION_SHARE = 0.25
MIN_VALIDATION_DAYS = 7
C_GRID = (0.03, 0.3, 3.0)
MAX_LEAVES = 12
#: Pairwise tables: how many, and bins per feature in them.
MAX_PAIRS = 10
PAIR_LEAVES = 5
#: Days at the start of the file left out of the fit (0: learn the cold start too; see the docstring).
WARMUP_DAYS = 0
MIN_FIT_DAYS = 14
#: A term whose weights span less than this (log-odds) is dropped.
MIN_WEIGHT_SPAN = 0.02
BLOCK_PRECISION = 0.8
MIN_FRAUDS = 20
#: Computed features the model is not offered: raw sums and means that only restate counts and ratios
#: (collinear: they split weights between them and make poor explanations).
NOT_MODELLED = frozenset({
    "card_amount_sum_1d", "card_amount_sum_7d", "card_amount_sum_30d", "card_amount_mean_1d", "card_amount_mean_7d",
    "card_amount_mean_30d", "card_amount_vs_30d_mean", "card_count_7d", "merchant_count_1d",
    "merchant_volume_vs_30d", "merchant_surge_1d", "card_known_compromised", "velocity_flag",
})
MODEL_FEATURES = tuple(name for name in FEATURE_NAMES if name not in NOT_MODELLED)


def _utc(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d")


def collect(transactions: list[dict[str, Any]], labels: dict[str, bool], scorer: Scorer, *, until_ms: int,
            label_delay_ms: int) -> tuple[list[list[float]], list[int], list[int], list[bool]]:
    """Feature rows, labels, timestamps and rules-flagged for transactions labelled by `until_ms`."""
    rows: list[list[float]] = []
    y: list[int] = []
    stamps: list[int] = []
    rules_flagged: list[bool] = []
    for scored in replay(transactions, labels, scorer, label_delay_ms=label_delay_ms, until_ms=until_ms):
        tid = scored.txn["transaction_id"]
        if tid not in labels or scored.txn["timestamp"] + label_delay_ms > until_ms:
            continue
        feats = scored.features
        rows.append([float(feats[name]) for name in MODEL_FEATURES])
        y.append(1 if labels[tid] else 0)
        stamps.append(scored.txn["timestamp"])
        rules_flagged.append(scored.assessment.decision != "approve")
    return rows, y, stamps, rules_flagged


def _bins(np: Any, x: Any, y: Any, min_leaf: int) -> list[float]:
    from sklearn.tree import DecisionTreeClassifier

    if np.unique(x).size < 2:
        return []
    tree = DecisionTreeClassifier(max_leaf_nodes=MAX_LEAVES, min_samples_leaf=min_leaf, random_state=0)
    tree.fit(x.reshape(-1, 1), y)
    edges = sorted({round(float(t), 6) for t, f in zip(tree.tree_.threshold, tree.tree_.feature) if f >= 0})
    return edges


def _coarse_bins(np: Any, x: Any, y: Any, min_leaf: int) -> list[float]:
    from sklearn.tree import DecisionTreeClassifier

    if np.unique(x).size < 2:
        return []
    tree = DecisionTreeClassifier(max_leaf_nodes=PAIR_LEAVES, min_samples_leaf=min_leaf, random_state=0)
    tree.fit(x.reshape(-1, 1), y)
    return sorted({round(float(t), 6) for t, f in zip(tree.tree_.threshold, tree.tree_.feature) if f >= 0})


def choose_pairs(np: Any, X: Any, y: Any, limit: int = MAX_PAIRS) -> list[tuple[int, int]]:
    """Feature pairs depth-2 boosted trees split on together, by the gain of the second split."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    if limit <= 0:
        return []
    booster = HistGradientBoostingClassifier(max_iter=150, max_depth=2, learning_rate=0.1, early_stopping=False,
                                             random_state=0)
    booster.fit(X, y)
    gain: dict[tuple[int, int], float] = {}
    for stage in booster._predictors:  # sklearn's fitted trees (nodes: feature_idx, left, right, is_leaf, gain)
        nodes = stage[0].nodes
        for node in nodes:
            if node["is_leaf"]:
                continue
            for child in (nodes[node["left"]], nodes[node["right"]]):
                if not child["is_leaf"] and child["feature_idx"] != node["feature_idx"]:
                    lo, hi = sorted((int(node["feature_idx"]), int(child["feature_idx"])))
                    key = (lo, hi)
                    gain[key] = gain.get(key, 0.0) + float(child["gain"])
    return [pair for pair, _ in sorted(gain.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]]


def _design(np: Any, sparse: Any, X: Any, edges: list[list[float]],
            pairs: Sequence[tuple[int, int, list[float], list[float]]] = ()) -> tuple[Any, list[int]]:
    """One-hot bins and pair cells (the same `bisect_right` the function uses: searchsorted side='right')."""
    columns, offsets, blocks = 0, [], []
    for j, e in enumerate(edges):
        offsets.append(columns)
        if e:
            blocks.append(np.searchsorted(np.asarray(e), X[:, j], side="right") + columns)
            columns += len(e) + 1
    for a, b, ea, eb in pairs:
        offsets.append(columns)
        cell = (np.searchsorted(np.asarray(ea), X[:, a], side="right") * (len(eb) + 1)
                + np.searchsorted(np.asarray(eb), X[:, b], side="right"))
        blocks.append(cell + columns)
        columns += (len(ea) + 1) * (len(eb) + 1)
    n = X.shape[0]
    if not blocks:
        raise SystemExit("no feature varies in the training data: nothing to learn")
    cols = np.stack(blocks, axis=1)
    rows = np.repeat(np.arange(n), cols.shape[1])
    matrix = sparse.csr_matrix((np.ones(rows.size), (rows, cols.ravel())), shape=(n, columns))
    return matrix, offsets


def _fit(np: Any, design: Any, y: Any, c: float) -> Any:
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=c, max_iter=2000, solver="lbfgs")
    model.fit(design, y)
    return model


def _pr_at(np: Any, risk: Any, y: Any, flagged_by_rules: Any, threshold: float) -> tuple[float, float, float]:
    alerts = flagged_by_rules | (risk >= threshold)
    n_alerts = int(alerts.sum())
    tp = int((alerts & (y == 1)).sum())
    positives = int((y == 1).sum())
    precision = tp / n_alerts if n_alerts else 0.0
    recall = tp / positives if positives else 0.0
    return precision, recall, n_alerts / y.size


def choose_thresholds(np: Any, risk: Any, y: Any, flagged_by_rules: Any, max_alert_rate: float) -> dict[str, float]:
    """Review at the best F1 within the alert-rate cap; block at the first risk with precision >= BLOCK_PRECISION."""
    candidates = np.unique(np.quantile(risk, np.linspace(0.9, 0.99995, 400)))
    best = None
    for t in candidates:
        precision, recall, rate = _pr_at(np, risk, y, flagged_by_rules, float(t))
        if rate > max_alert_rate or precision + recall == 0:
            continue
        f1 = 2 * precision * recall / (precision + recall)
        if best is None or f1 > best[0]:
            best = (f1, float(t), precision, recall, rate)
    if best is None:
        t = float(np.quantile(risk, 1 - max_alert_rate))
        best = (0.0, t, *_pr_at(np, risk, y, flagged_by_rules, t))
    review = best[1]
    block = None
    for t in candidates[candidates > review]:
        above = risk >= t
        if above.sum() >= 5 and (y[above] == 1).mean() >= BLOCK_PRECISION:
            block = float(t)
            break
    if block is None:
        block = float(np.quantile(risk[risk >= review], 0.9)) if (risk >= review).sum() >= 10 else (1 + review) / 2
    block = min(max(block, review + 1e-6), 1 - 1e-6)
    return {"review": review, "block": block, "validation_f1": best[0], "validation_precision": best[2],
            "validation_recall": best[3], "validation_alert_rate": best[4]}


def average_precision(risk: list[float], y: list[int]) -> float:
    """Average precision (the area under the precision-recall curve, step-wise; ties as one step)."""
    positives = sum(y)
    if not positives:
        return float("nan")
    pairs = sorted(zip(risk, y), key=lambda p: -p[0])
    ap = tp = seen = 0.0
    i = 0
    while i < len(pairs):
        j = i
        group_tp = 0
        while j < len(pairs) and pairs[j][0] == pairs[i][0]:
            group_tp += pairs[j][1]
            j += 1
        seen += j - i
        tp += group_tp
        if group_tp:
            ap += (group_tp / positives) * (tp / seen)
        i = j
    return ap


def train(transactions: list[dict[str, Any]], labels: dict[str, bool], scorer: Scorer, *, until_ms: int,
          label_delay_days: int, max_alert_rate: float = 0.01, version: str | None = None,
          log: Any = sys.stderr) -> dict[str, Any]:
    import numpy as np
    from scipy import sparse

    started = time.time()
    delay_ms = label_delay_days * DAY_MS
    rows, y_list, stamps, rules_list = collect(transactions, labels, scorer, until_ms=until_ms, label_delay_ms=delay_ms)
    if sum(y_list) < MIN_FRAUDS:
        raise SystemExit(f"only {sum(y_list)} fraud labels known by the end of --until (need {MIN_FRAUDS}): "
                         "give more history or a shorter --label-delay-days")
    X = np.asarray(rows, dtype=float)
    y = np.asarray(y_list, dtype=int)
    ts = np.asarray(stamps, dtype=np.int64)
    by_rules = np.asarray(rules_list, dtype=bool)
    first, last = int(ts.min()), int(ts.max())
    cut = max(first, min(int(np.quantile(ts, 1 - VALIDATION_SHARE)), last - MIN_VALIDATION_DAYS * DAY_MS))
    warm = int(min(t["timestamp"] for t in transactions)) + WARMUP_DAYS * DAY_MS
    if cut - warm < MIN_FIT_DAYS * DAY_MS:
        warm = first
    fit, valid = (ts >= warm) & (ts < cut), ts >= cut
    settled = ts >= warm
    if y[fit].sum() < MIN_FRAUDS // 2 or y[valid].sum() < MIN_FRAUDS // 2:
        raise SystemExit("too few fraud labels on one side of the validation split; give more history")
    print(f"train: {len(y)} labelled transactions ({int(y.sum())} fraud), fit {int(fit.sum())} / validate "
          f"{int(valid.sum())} from {_utc(cut)}; features in {time.time() - started:.1f} s", file=log)

    chosen_pairs = choose_pairs(np, X[fit], y[fit])
    print(f"train: pairs {', '.join(f'{MODEL_FEATURES[a]} x {MODEL_FEATURES[b]}' for a, b in chosen_pairs)}; "
          f"{time.time() - started:.1f} s", file=log)

    def binning(mask: Any) -> tuple[list[list[float]], list[tuple[int, int, list[float], list[float]]]]:
        min_leaf = max(50, int(mask.sum() * 0.0005))
        edges = [_bins(np, X[mask, j], y[mask], min_leaf) for j in range(X.shape[1])]
        coarse = {j: _coarse_bins(np, X[mask, j], y[mask], 4 * min_leaf) for p in chosen_pairs for j in p}
        pairs = [(a, b, coarse[a], coarse[b]) for a, b in chosen_pairs if coarse[a] and coarse[b]]
        return edges, pairs

    def risk_of(edges: list[list[float]], pairs: Any, model: Any, rows_mask: Any) -> Any:
        design, _ = _design(np, sparse, X[rows_mask], edges, pairs)
        return model.predict_proba(design)[:, 1]

    fit_edges, fit_pairs = binning(fit)
    fit_design, _ = _design(np, sparse, X[fit], fit_edges, fit_pairs)
    trials = []
    for c in C_GRID:
        model = _fit(np, fit_design, y[fit], c)
        risk = risk_of(fit_edges, fit_pairs, model, valid)
        trials.append((average_precision(risk.tolist(), y[valid].tolist()), c, model, risk))
        print(f"train: C={c}: validation average precision {trials[-1][0]:.3f}; {time.time() - started:.1f} s",
              file=log)
    del fit_design
    best_ap, best_c, _, valid_risk = max(trials, key=lambda t: t[0])
    chosen = choose_thresholds(np, valid_risk, y[valid], by_rules[valid], max_alert_rate)

    # Refit on every labelled row; carry the thresholds over at the same validation alert rates.
    everything = settled
    edges, pairs = binning(everything)
    all_design, offsets = _design(np, sparse, X[everything], edges, pairs)
    model = _fit(np, all_design, y[everything], best_c)
    del all_design
    refit_valid = risk_of(edges, pairs, model, valid)
    review_rate = float((valid_risk >= chosen["review"]).mean())
    block_rate = float((valid_risk >= chosen["block"]).mean())
    review = float(np.quantile(refit_valid, 1 - review_rate)) if review_rate > 0 else chosen["review"]
    block = float(np.quantile(refit_valid, 1 - block_rate)) if block_rate > 0 else chosen["block"]
    review = min(max(review, 1e-6), 1 - 2e-6)
    block = min(max(block, review + 1e-6), 1 - 1e-6)

    coef = model.coef_[0]
    Xs = X[everything]
    terms = []
    for j, name in enumerate(MODEL_FEATURES):
        if not edges[j]:
            continue
        weights = coef[offsets[j]:offsets[j] + len(edges[j]) + 1]
        if float(weights.max() - weights.min()) < MIN_WEIGHT_SPAN:
            continue
        bins = np.searchsorted(np.asarray(edges[j]), Xs[:, j], side="right")
        reference = float(weights[bins].mean())
        terms.append({"name": name, "edges": edges[j], "weights": [round(float(w), 6) for w in weights],
                      "reference": round(reference, 6)})
    interactions = []
    for k, (a, b, ea, eb) in enumerate(pairs):
        start = offsets[len(MODEL_FEATURES) + k]
        width = len(eb) + 1
        weights = coef[start:start + (len(ea) + 1) * width]
        if float(weights.max() - weights.min()) < MIN_WEIGHT_SPAN:
            continue
        cells = (np.searchsorted(np.asarray(ea), Xs[:, a], side="right") * width
                 + np.searchsorted(np.asarray(eb), Xs[:, b], side="right"))
        interactions.append({"names": [MODEL_FEATURES[a], MODEL_FEATURES[b]], "edges": [ea, eb],
                             "weights": [[round(float(w), 6) for w in weights[r * width:(r + 1) * width]]
                                         for r in range(len(ea) + 1)],
                             "reference": round(float(weights[cells].mean()), 6)})
    del Xs
    version = version or f"scorecard-{_utc(until_ms - 1)}"
    artifact = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "version": version,
        "intercept": round(float(model.intercept_[0]), 6),
        "features": terms,
        "interactions": interactions,
        "thresholds": {"review": round(review, 6), "block": round(block, 6)},
        "card": {
            "trained_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "data_period": {"first_transaction": _utc(int(min(t["timestamp"] for t in transactions))),
                            "until": _utc(until_ms - 1), "learned_from": f"{_utc(max(first, warm))} .. {_utc(last)}"},
            "label_delay_days": label_delay_days,
            "transactions_replayed": sum(1 for t in transactions if t["timestamp"] < until_ms),
            "labelled_transactions": len(y), "frauds": int(y.sum()),
            "fraud_rate": round(float(y.mean()), 6),
            "features": [t["name"] for t in terms],
            "model": f"scorecard with pairwise terms: supervised bins (tree, <= {MAX_LEAVES} per feature), "
                     f"{len(interactions)} pair tables (<= {PAIR_LEAVES}x{PAIR_LEAVES}, pairs chosen by depth-2 "
                     f"boosting gain), L2 logistic regression, C={best_c}",
            "learned_from_warmup_skipped_days": WARMUP_DAYS if warm > first else 0,
            "validation": {"period_from": _utc(cut), "transactions": int(valid.sum()),
                           "frauds": int(y[valid].sum()), "average_precision": round(best_ap, 4),
                           "precision": round(chosen["validation_precision"], 4),
                           "recall": round(chosen["validation_recall"], 4),
                           "alert_rate": round(chosen["validation_alert_rate"], 5)},
            "thresholds_chosen_by": (f"review: best F1 of the decisions (rules or model) on the validation period "
                                     f"with alert rate <= {max_alert_rate:.2%}; block: lowest risk whose "
                                     f"validation alerts are >= {BLOCK_PRECISION:.0%} fraud; both re-set after "
                                     "the refit at the same validation alert rates"),
            "rules_at_training": {"review_score": scorer.rules.review_score, "block_score": scorer.rules.block_score},
            "seconds": round(time.time() - started, 1),
        },
    }
    parse_model(artifact)  # what we write is what the function accepts
    print(f"train: validation AP {best_ap:.3f}, precision {chosen['validation_precision']:.3f}, recall "
          f"{chosen['validation_recall']:.3f}, alert rate {chosen['validation_alert_rate']:.3%}; "
          f"{time.time() - started:.1f} s", file=log)
    return artifact


def write_model(artifact: dict[str, Any], path: str) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(artifact, handle, indent=1, sort_keys=False)
        handle.write("\n")
