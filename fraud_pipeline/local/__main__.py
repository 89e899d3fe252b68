"""`python -m fraud_pipeline.local demo|serve --stack dev`: the pipeline on this machine, no AWS account needed."""

from __future__ import annotations

import argparse
import sys

from .demo import run as run_demo
from .serve import run as run_serve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fraud_pipeline.local", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="send generated traffic through the emulated pipeline and report")
    demo.add_argument("--stack", default="dev")
    demo.add_argument("--transactions", type=int, default=1000,
                      help="valid transactions in the final week, after the synthetic history (default 1000)")
    demo.add_argument("--history-days", type=int, default=None,
                      help="days of synthetic history sent before the final week (default 21)")
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--no-progress", action="store_true")
    serve = sub.add_parser("serve", help="keep the emulated pipeline up for your own requests")
    serve.add_argument("--stack", default="dev")
    serve.add_argument("--port", type=int, default=8080, help="port of the REST API (default 8080)")
    serve.add_argument("--aws-port", type=int, default=5000, help="port of the emulated AWS endpoint (default 5000)")
    serve.add_argument("--info-file", metavar="FILE",
                       help="once ready, write the endpoints, API key and physical names here as JSON (removed on exit)")
    args = parser.parse_args(argv)
    if args.command == "demo" and args.transactions <= 0:
        parser.error("--transactions must be positive")
    if args.command == "demo" and args.history_days is not None and args.history_days < 1:
        parser.error("--history-days must be positive")
    if args.command == "demo":
        extra = {"history_days": args.history_days} if args.history_days is not None else {}
        return run_demo(args.stack, args.transactions, args.seed, progress=not args.no_progress, **extra)
    return run_serve(args.stack, args.port, args.aws_port, args.info_file)


if __name__ == "__main__":
    sys.exit(main())
