"""`make bench`'s entry point: `bench/bench.py` runs the bench, `bench/bench.py --phase NAME` one measured
phase (the bench's own child processes), `bench/bench.py --plot bench/history.json` redraws the plot.

What it measures, its settings and its modules: the `bench` package beside this file (bench/__init__.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Python puts a script's folder first on sys.path, and there `bench` is this file, not the package beside
# it: the repository root takes that place, so that `bench` is the package.
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)
sys.path.insert(0, str(ROOT))
for _folder in ("include", "tools"):  # the pipeline package, and the developer tooling (streamflow_dev)
    if str(ROOT / _folder) not in sys.path:
        sys.path.insert(0, str(ROOT / _folder))

from bench.cli import main  # noqa: E402 - needs the path above

if __name__ == "__main__":
    raise SystemExit(main())
