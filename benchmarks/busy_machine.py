"""Wall time of the main job (`make run`'s `hamixer compare --dataset digits`) on an idle
machine and beside one competing training, for each way of sharing the cores.

A process whose threads wait for each other at every operation stalls whenever another
process holds one of its cores; `--jobs auto` (the default) therefore trains a plan's runs
side by side with one thread each. This script measures what that buys: each setting is
timed first alone, then while `hamixer train` (a long digits run, one process with torch's
default threads) competes for the cores. Each run's best accuracies are printed, and whether
they agree across the measurements (the sharing does not change them; the threads per run may,
in the last bits of the float sums).

    python benchmarks/busy_machine.py                     # make run's settings, the old default
    python benchmarks/busy_machine.py --epochs 2          # a quick look at the harness

Prints one line per measurement (wall seconds) and, with ``--json FILE``, writes them.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: name → the flags of `hamixer compare` beyond `--dataset digits`.
SETTINGS = {
    "make run (--threads 1, --jobs auto)": ["--threads", "1"],
    "one at a time, torch's threads (--jobs 1)": ["--jobs", "1"],
}


def hamixer(*args: str) -> list[str]:
    return [sys.executable, "-m", "hamixer", *args]


def time_compare(flags: list[str], out: Path, epochs: int | None) -> tuple[float, dict]:
    """Run the comparison into ``out`` (fresh); its wall seconds and best accuracies."""
    extra = ["--epochs", str(epochs)] if epochs else []
    start = time.monotonic()
    subprocess.run(hamixer("compare", "--dataset", "digits", "--quiet", *flags, *extra,
                           "--out", str(out)), check=True, stdout=subprocess.DEVNULL)
    seconds = time.monotonic() - start
    rows = json.loads((out / "results.json").read_text())["models"]
    return seconds, {r["model"]: round(r["best_test_acc"], 2) for r in rows}


def start_competitor(out: Path) -> subprocess.Popen:
    """One long training with torch's default threads, as another user's job would be."""
    return subprocess.Popen(hamixer("train", "--dataset", "digits", "--model", "paramixer",
                                    "--epochs", "100000", "--quiet", "--no-symmetry",
                                    "--out", str(out)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--epochs", type=int, default=None,
                   help="epochs of each run (default: the digits recipe's 20, as make run)")
    p.add_argument("--json", default=None, metavar="FILE", help="also write the results here")
    args = p.parse_args()
    # a SIGTERM unwinds like Ctrl-C, so that the competing training is stopped too
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    from hamixer.device import usable_cores

    print(f"{usable_cores()} usable cores, load average {os.getloadavg()[0]:.2f} before",
          flush=True)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for k, (name, flags) in enumerate(SETTINGS.items()):
            for load in ("idle", "beside one training"):
                competitor = None
                if load != "idle":
                    competitor = start_competitor(Path(tmp) / f"competitor{k}")
                    time.sleep(10)  # past its start-up, training
                try:
                    seconds, best = time_compare(flags, Path(tmp) / f"cmp{k}-{load[0]}",
                                                 args.epochs)
                finally:
                    if competitor is not None:
                        competitor.terminate()
                        competitor.wait()
                results.append({"setting": name, "flags": flags, "load": load,
                                "seconds": round(seconds, 1), "best_test_acc": best})
                print(f"{name}, {load}: {seconds:.1f} s  best " +
                      ", ".join(f"{m} {a:.2f}" for m, a in best.items()), flush=True)
    same = all(r["best_test_acc"] == results[0]["best_test_acc"] for r in results)
    print(f"the same best accuracies in every measurement: {'yes' if same else 'no'}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
