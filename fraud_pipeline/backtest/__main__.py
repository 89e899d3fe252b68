"""Train and backtest from the command line (scripts and CI depend on exactly this interface).

    python -m fraud_pipeline.backtest train --transactions FILE --until YYYY-MM-DD [--label-delay-days N] --out MODEL
    python -m fraud_pipeline.backtest run   --transactions FILE [--model MODEL] [--rules RULES.json]
           --from YYYY-MM-DD --until YYYY-MM-DD [--label-delay-days N] --scores OUT.csv [--report DIR]

`run` replays FILE in time order up to the end of `--until` through the
detection function's scoring (`handlers.scoring`, state in memory) and writes
`transaction_id,risk,score,decision,reasons` for every transaction from
`--from` on. Without `--model` / `--rules` it uses the shipped defaults
(`handlers/models/default.json`, the built-in rules); `--model none` scores
with the rules only. A `shadow` section in the rules file is scored beside
the live rules and compared.
"""

from __future__ import annotations

import argparse
import csv
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from handlers.features import DAY_MS
from handlers.model import ModelError, Scorecard, load_model
from handlers.rules import Rules, RulesConfigError, load_rules, load_shadow_rules
from handlers.scoring import Scorer

from .data import day_start_ms, read_transactions, report_bad_rows

DEFAULT_LABEL_DELAY_DAYS = 7


def default_model_path() -> Path:
    import handlers

    return Path(handlers.__file__).resolve().parent / "models" / "default.json"


def read_model(path: str | None) -> Scorecard | None:
    if path is not None and path.strip().lower() == "none":
        return None
    source = Path(path) if path else default_model_path()
    try:
        return load_model(source.read_bytes())
    except OSError as exc:
        raise SystemExit(f"--model {source}: {exc.strerror}") from None
    except ModelError as exc:
        raise SystemExit(f"--model {source}: {exc}") from None


def read_rules(path: str | None) -> tuple[Rules, Rules | None]:
    if not path:
        return Rules(), None
    try:
        raw = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SystemExit(f"--rules {path}: {exc.strerror}") from None
    try:
        return load_rules(raw), load_shadow_rules(raw)
    except RulesConfigError as exc:
        raise SystemExit(f"--rules {path}: {exc}") from None


def _label_delay(value: str) -> int:
    try:
        days = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError("must be a whole number of days") from None
    if not 0 <= days <= 365:
        raise argparse.ArgumentTypeError("must be between 0 and 365 days")
    return days


def cmd_train(args: argparse.Namespace) -> int:
    from .train import train, write_model

    data = read_transactions(args.transactions)
    report_bad_rows(data)
    rules, _ = read_rules(args.rules)
    until_ms = day_start_ms(args.until) + DAY_MS
    artifact = train(data.transactions, data.labels, Scorer(rules), until_ms=until_ms,
                     label_delay_days=args.label_delay_days, max_alert_rate=args.max_alert_rate)
    artifact["card"]["reproduce"] = args.reproduce or ("python -m fraud_pipeline.backtest " + " ".join(
        shlex.quote(a) for a in (argv_of(args) or [])))
    write_model(artifact, args.out)
    print(f"model {artifact['version']} written to {args.out}", file=sys.stderr)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from .replay import replay
    from .report import Row, confusion, write_report

    started = time.perf_counter()
    data = read_transactions(args.transactions)
    report_bad_rows(data)
    loaded = time.perf_counter()
    model = read_model(args.model)
    rules, shadow_rules = read_rules(args.rules)
    scorer = Scorer(rules, model)
    shadow = Scorer(shadow_rules, model) if shadow_rules else None
    from_ms, until_ms = day_start_ms(args.from_), day_start_ms(args.until) + DAY_MS
    if from_ms >= until_ms:
        raise SystemExit("--from must not be after --until")
    rows: list[Row] = []
    shadow_rows: list[Row] = []
    replayed = 0
    with open(args.scores, "w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["transaction_id", "risk", "score", "decision", "reasons"])
        for scored in replay(data.transactions, data.labels, scorer, label_delay_ms=args.label_delay_days * DAY_MS,
                             until_ms=until_ms, shadow=shadow):
            replayed += 1
            txn, a = scored.txn, scored.assessment
            if txn["timestamp"] < from_ms:
                continue
            writer.writerow([txn["transaction_id"], f"{a.risk:.6f}", a.score, a.decision, ";".join(a.reasons)])
            fraud = data.labels.get(txn["transaction_id"])
            rows.append(Row(txn["transaction_id"], txn["timestamp"], a.risk or 0.0, a.decision, a.reasons, fraud))
            if scored.shadow is not None:
                s = scored.shadow
                shadow_rows.append(Row(txn["transaction_id"], txn["timestamp"], s.risk or 0.0, s.decision, s.reasons, fraud))
    elapsed = time.perf_counter() - loaded
    o = confusion(rows)
    name = model.version if model else "rules only"

    def line(label: str, f: dict[str, Any]) -> str:
        def v(x: Any, pct: bool = False) -> str:
            return "-" if x is None else (f"{x:.2%}" if pct else f"{x:.3f}")
        return (f"{label}: {f['transactions']} scored, {f['frauds']} known fraud, {f['alerts']} alerts: precision "
                f"{v(f['precision'])}, recall {v(f['recall'])}, average precision {v(f['average_precision'])}, "
                f"alert rate {v(f['alert_rate'], True)}")

    print(line(f"live ({name})", o), file=sys.stderr)
    extra: dict[str, Any] = {}
    if shadow_rows:
        c = confusion(shadow_rows)
        print(line("candidate (RULES_JSON.shadow)", c), file=sys.stderr)
        disagree = sum(1 for a, b in zip(rows, shadow_rows) if a.decision != b.decision)
        print(f"live and candidate decisions differ on {disagree} of {len(rows)} transactions", file=sys.stderr)
        extra["candidate"] = c
        extra["decisions_differing"] = disagree
    print(f"replayed {replayed} transactions in {elapsed:.1f} s ({replayed / elapsed if elapsed else 0:,.0f} "
          f"transactions/s; reading the file took {loaded - started:.1f} s); scores in {args.scores}", file=sys.stderr)
    if args.report:
        for path in write_report(args.report, rows, f"Backtest {args.from_} .. {args.until} ({name})", extra):
            print(f"report: {path}", file=sys.stderr)
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m fraud_pipeline.backtest", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="learn a scorecard model from labelled history")
    t.add_argument("--transactions", required=True, metavar="FILE")
    t.add_argument("--until", required=True, metavar="YYYY-MM-DD", help="learn from history up to the end of this day (UTC)")
    t.add_argument("--label-delay-days", type=_label_delay, default=DEFAULT_LABEL_DELAY_DAYS, metavar="N")
    t.add_argument("--out", required=True, metavar="MODEL")
    t.add_argument("--rules", metavar="RULES.json", help="rules the model is trained beside (default: built-in)")
    t.add_argument("--max-alert-rate", type=float, default=0.01, help="alert-rate cap for the review threshold")
    t.add_argument("--reproduce", metavar="TEXT",
                   help="how to rebuild this model (recorded in the model card; default: this command line)")
    t.set_defaults(func=cmd_train)
    r = sub.add_parser("run", help="replay and score a period")
    r.add_argument("--transactions", required=True, metavar="FILE")
    r.add_argument("--model", metavar="MODEL", help="a model file, or 'none' for rules only (default: shipped model)")
    r.add_argument("--rules", metavar="RULES.json", help="RULES_JSON document (default: built-in rules)")
    r.add_argument("--from", dest="from_", required=True, metavar="YYYY-MM-DD")
    r.add_argument("--until", required=True, metavar="YYYY-MM-DD")
    r.add_argument("--label-delay-days", type=_label_delay, default=DEFAULT_LABEL_DELAY_DAYS, metavar="N")
    r.add_argument("--scores", required=True, metavar="OUT.csv")
    r.add_argument("--report", metavar="DIR")
    r.set_defaults(func=cmd_run)
    return p


def argv_of(args: argparse.Namespace) -> list[str] | None:
    return getattr(args, "_argv", None)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    args._argv = list(sys.argv[1:] if argv is None else argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
