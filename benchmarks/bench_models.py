"""Run the model benchmark: the same as ``hamixer bench`` (see benchmarks/README.md).

    PYTHONPATH=src python benchmarks/bench_models.py --shape all --dtype fp32 --threads 1
"""

from __future__ import annotations

import sys
from pathlib import Path

try:
    import hamixer  # noqa: F401
except ImportError:  # run from a source checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from hamixer.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", *sys.argv[1:]]))
