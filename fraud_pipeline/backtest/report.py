"""Backtest figures: precision, recall, average precision and alert rate, overall, per reason and per day.

Pure Python (the chart needs matplotlib, which `make install` brings; without
it the report says so and skips the PNG).
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from handlers.scoring import reason_code

from .train import average_precision

FLAGGED = ("review", "block")


@dataclass
class Row:
    transaction_id: str
    timestamp: int
    risk: float
    decision: str
    reasons: tuple[str, ...]
    fraud: bool | None


def confusion(rows: Sequence[Row]) -> dict[str, Any]:
    known = [r for r in rows if r.fraud is not None]
    alerts = [r for r in known if r.decision in FLAGGED]
    tp = sum(1 for r in alerts if r.fraud)
    positives = sum(1 for r in known if r.fraud)
    return {
        "transactions": len(rows), "labelled": len(known), "frauds": positives, "alerts": len(alerts),
        "true_positives": tp,
        "precision": tp / len(alerts) if alerts else None,
        "recall": tp / positives if positives else None,
        "alert_rate": len([r for r in rows if r.decision in FLAGGED]) / len(rows) if rows else None,
        "average_precision": average_precision([r.risk for r in known], [1 if r.fraud else 0 for r in known])
        if positives else None,
    }


def figures(rows: Sequence[Row]) -> dict[str, Any]:
    overall = confusion(rows)
    positives = overall["frauds"] or 0
    per_reason: dict[str, list[Row]] = defaultdict(list)
    per_day: dict[str, list[Row]] = defaultdict(list)
    for r in rows:
        for code in {reason_code(x) for x in r.reasons}:
            per_reason[code].append(r)
        per_day[datetime.fromtimestamp(r.timestamp / 1000, tz=UTC).strftime("%Y-%m-%d")].append(r)
    reasons = {}
    for code, hits in sorted(per_reason.items()):
        known = [r for r in hits if r.fraud is not None]
        frauds = sum(1 for r in known if r.fraud)
        reasons[code] = {"transactions": len(hits), "frauds": frauds,
                         "precision": frauds / len(known) if known else None,
                         "recall": frauds / positives if positives else None}
    days = {day: confusion(day_rows) for day, day_rows in sorted(per_day.items())}
    return {"overall": overall, "per_reason": reasons, "per_day": days}


def _fmt(value: Any, pct: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:.2%}" if pct else (f"{value:.3f}" if isinstance(value, float) else str(value))


def markdown(result: dict[str, Any], title: str) -> str:
    o = result["overall"]
    lines = [f"# {title}", "",
             "| transactions | frauds | alerts | precision | recall | average precision | alert rate |",
             "|---:|---:|---:|---:|---:|---:|---:|",
             f"| {o['transactions']} | {o['frauds']} | {o['alerts']} | {_fmt(o['precision'])} | {_fmt(o['recall'])} | "
             f"{_fmt(o['average_precision'])} | {_fmt(o['alert_rate'], True)} |", "",
             "## Per reason code (transactions carrying it, whatever the decision)", "",
             "| reason | transactions | frauds | precision | share of all fraud |", "|---|---:|---:|---:|---:|"]
    for code, r in result["per_reason"].items():
        lines.append(f"| {code} | {r['transactions']} | {r['frauds']} | {_fmt(r['precision'])} | {_fmt(r['recall'])} |")
    lines += ["", "## Per day", "", "| day | transactions | frauds | alerts | precision | recall | alert rate |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for day, d in result["per_day"].items():
        lines.append(f"| {day} | {d['transactions']} | {d['frauds']} | {d['alerts']} | {_fmt(d['precision'])} | "
                     f"{_fmt(d['recall'])} | {_fmt(d['alert_rate'], True)} |")
    return "\n".join(lines) + "\n"


def pr_curve(rows: Sequence[Row]) -> tuple[list[float], list[float]]:
    known = sorted((r for r in rows if r.fraud is not None), key=lambda r: -r.risk)
    positives = sum(1 for r in known if r.fraud)
    precision, recall, tp = [], [], 0
    for i, r in enumerate(known, start=1):
        tp += 1 if r.fraud else 0
        if i == len(known) or known[i].risk != r.risk:
            precision.append(tp / i)
            recall.append(tp / positives if positives else 0.0)
    return precision, recall


def write_report(directory: str, rows: Sequence[Row], title: str, extra: dict[str, Any] | None = None) -> list[str]:
    """Write report.md, report.json and pr_curve.png into `directory`; return the paths written."""
    os.makedirs(directory, exist_ok=True)
    result = figures(rows)
    if extra:
        result.update(extra)
    written = []
    md = os.path.join(directory, "report.md")
    with open(md, "w", encoding="utf-8") as handle:
        handle.write(markdown(result, title))
        handle.writelines(f"\n## {key}\n\n```\n{json.dumps(value, indent=1, default=str)}\n```\n" for key, value in (extra or {}).items())
    written.append(md)
    js = os.path.join(directory, "report.json")
    with open(js, "w", encoding="utf-8") as handle:
        json.dump(result, handle, indent=1, default=str)
    written.append(js)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return written
    precision, recall = pr_curve(rows)
    fig, ax = plt.subplots(figsize=(6, 4.5), dpi=110)
    ax.step(recall, precision, where="post", color="#1f6feb")
    o = result["overall"]
    if o["precision"] is not None and o["recall"] is not None:
        ax.scatter([o["recall"]], [o["precision"]], color="#d1242f", zorder=3,
                   label=f"decisions: P {o['precision']:.2f} R {o['recall']:.2f} at {o['alert_rate']:.2%} alerts")
        ax.legend(loc="lower left")
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_title(f"{title}\naverage precision {_fmt(o['average_precision'])}")
    ax.grid(alpha=0.3)
    png = os.path.join(directory, "pr_curve.png")
    fig.tight_layout()
    fig.savefig(png)
    plt.close(fig)
    written.append(png)
    return written
