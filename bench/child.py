"""The child side: `bench/bench.py --phase NAME` runs one phase and prints its result on one line
(RESULT_PREFIX + JSON), which the parent's `run_child` reads back."""

from __future__ import annotations

import json
import os

from bench.anatomy import phase_anatomy
from bench.dag import phase_parse
from bench.history import phase_history
from bench.load import phase_copy_floor, phase_course, phase_snapshot, phase_upsert
from bench.settings import RESULT_PREFIX
from bench.validate import phase_validate

PHASES = {"copy_floor": phase_copy_floor, "anatomy": phase_anatomy, "upsert": phase_upsert, "course": phase_course,
          "validate": phase_validate, "snapshot": phase_snapshot, "parse": phase_parse,
          "history": phase_history}


def child_main(name: str) -> int:
    args = json.loads(os.environ.pop("BENCH_PHASE_ARGS", "{}"))
    result = PHASES[name](args)
    print(RESULT_PREFIX + json.dumps(result), flush=True)
    if result.get("failed"):
        print("failed: " + "\n".join(result["failed"]), flush=True)
        return 1
    return 0
