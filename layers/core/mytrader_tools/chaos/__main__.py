"""`python -m mytrader_tools.chaos [--out out/chaos] [--quick] [--classes a,b] [--cases x,y]`: exit 1 on any breach,
lost decision or fill, or duplicate order."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mytrader_tools.chaos.runner import run, table


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mytrader_tools.chaos",
                                description="Acceptance chaos suite against the embedded AWS.")
    p.add_argument("--out", type=Path, default=Path("out/chaos"), help="where summary.json goes")
    p.add_argument("--quick", action="store_true", help="a few cases per class")
    p.add_argument("--classes", default="", help="comma list: hostile_messages, races, parameter_faults, llm_answers, "
                                              "bad_market_data, feed_loss")
    p.add_argument("--cases", default="", help="comma list of case names (within the classes chosen)")
    p.add_argument("-v", "--verbose", action="store_true", help="one line per case as it ends")
    args = p.parse_args(argv)
    classes = [c.strip() for c in args.classes.split(",") if c.strip()] or None
    names = [c.strip() for c in args.cases.split(",") if c.strip()] or None
    progress = (lambda line: print(line, file=sys.stderr, flush=True)) if args.verbose else None
    summary = run(args.out, quick=args.quick, classes=classes, names=names, progress=progress)
    print(table(summary))
    print(f"summary: {args.out / 'summary.json'}")
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
