"""``hamixer bench``: training and inference speed of the family against timm's MlpMixer."""

from __future__ import annotations

import argparse
import sys

NAME = "bench"
HELP = "time the Mixer family against timm's MlpMixer and the machine's matmul limit"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--shape", choices=("224", "28", "8", "all"), default="all",
                   help="224: Mixer-S/16 at 224 px, batch 8; 28: the 28 px CPU config, "
                        "batch 128; 8: the 8 px models, batch 64 (a smoke test); "
                        "all: 224 and 28 (default)")
    p.add_argument("--dtype", choices=("fp32", "bf16", "both"), default="fp32",
                   help="fp32, bf16 autocast, or both (default: fp32)")
    p.add_argument("--mode", choices=("train", "infer", "both"), default="both",
                   help="training step, inference forward, or both (default: both)")
    p.add_argument("--models", default=None,
                   help="comma-separated subset of timm,mlpmixer,vanillamixer,paramixer,"
                        "symmixer,asymmixer (default: all)")
    p.add_argument("--rounds", type=int, default=5, help="timed rounds, median (default: 5)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first (default: 2)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads, pinned for the run (default: all cores)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda[:N] (default: auto)")
    p.add_argument("--json", metavar="OUT", default=None, help="also write the results here")


def run(args: argparse.Namespace) -> int:
    from ..experiments.bench import CANDIDATES, MAIN_SHAPES, format_table, run_benchmark, to_json
    from ..io import write_text

    shapes = list(MAIN_SHAPES) if args.shape == "all" else [args.shape]
    dtypes = ["fp32", "bf16"] if args.dtype == "both" else [args.dtype]
    modes = ["train", "infer"] if args.mode == "both" else [args.mode]
    candidates = (list(CANDIDATES) if args.models is None
                  else [m.strip() for m in args.models.split(",") if m.strip()])
    results = run_benchmark(shapes, dtypes, modes, candidates, rounds=args.rounds,
                            warmup=args.warmup, threads=args.threads, device=args.device,
                            log=lambda msg: print(msg, file=sys.stderr, flush=True))
    print(format_table(results))
    if args.json:
        write_text(args.json, to_json(results) + "\n")
        print(f"wrote {args.json}", file=sys.stderr)
    return 0
