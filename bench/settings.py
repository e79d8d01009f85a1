"""What every part of the bench shares: the repository's paths, the two months the phases but the
history run on, the defaults of N, MONTHS, HISTORY_N and BENCH_SEED, and the line a child reports on."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Each child runs the entry point again with `--phase` (a process of its own: its own peak RSS and CPU).
ENTRY_POINT = ROOT / "bench" / "bench.py"
DEFAULT_N = 300_000
SEED = 8613
DEFAULT_MONTHS = 24  # the history phase: months one after another (the other phases use the first two)
HISTORY_N_CAP = 100_000  # its users unless HISTORY_N says otherwise: 24 months of them take minutes, not an hour
FIRST, NEXT = "month_000", "month_001"
HISTORY_PLOT = ROOT / "bench" / "history.svg"  # docs/performance.md embeds it
RESULTS_JSON = ROOT / "bench" / "results.json"  # the targets' latest figures, per N (docs/performance.md)
RESULT_PREFIX = "BENCH-RESULT "
VALIDATION_RETRY_WORK_MEM = "256MB"  # a validation rerun with more memory, when the first one failed
