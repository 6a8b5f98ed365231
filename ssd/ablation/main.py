"""`python -m ssd.ablate --study NAME --scale smoke|cpu|gpu --seeds N --out DIR [--json]`:
run (or resume) one of the paper's ablations (`ssd.ablation.studies`) and print its table.
"""
from __future__ import annotations

import argparse
import json
import signal
import sys

from ssd.ablation.runner import command_line, run_study
from ssd.ablation.studies import SCALES, STUDIES
from ssd.ablation.table import markdown
from ssd.device import DEVICES


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m ssd.ablate",
                                description="Run one of the paper's ablations; resumes in the same --out.")
    p.add_argument("--study", required=True, choices=sorted(STUDIES), help="which study (docs/paper-lab.md)")
    p.add_argument("--scale", required=True, choices=tuple(SCALES), help="smoke (plumbing), cpu or gpu")
    p.add_argument("--seeds", type=int, default=0, help="training seeds per variant (0: the scale's)")
    p.add_argument("--out", required=True, help="the study folder (created; resumed when it exists)")
    p.add_argument("--device", default="auto", choices=DEVICES, help="device of every run")
    p.add_argument("--json", action="store_true", help="print results.json instead of the table")
    return p


def _stop_on_sigterm(signum, frame):  # noqa: ARG001 - signal handler signature
    raise KeyboardInterrupt()


def main(argv: list[str] | None = None) -> int:
    """Run the study; 0 when it ran to its end, 1 when it was stopped (it resumes), 2 on a bad setting."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    seeds = list(range(args.seeds or SCALES[args.scale].seeds))
    signal.signal(signal.SIGTERM, _stop_on_sigterm)  # stop the current run cleanly (it saves last.pt)

    def progress(done: int, total: int, message: str) -> None:
        print(f"[{done}/{total}] {message}", file=sys.stderr, flush=True)

    try:
        doc = run_study(args.study, args.scale, seeds, args.out, command_line(argv), args.device, progress)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"stopped; run the same command again to resume ({args.out})", file=sys.stderr)
        return 1
    print(json.dumps(doc, indent=2) if args.json else markdown(doc["table"]))
    return 0
