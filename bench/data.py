"""The generated months every phase reads (`streamflow_dev.generate`), cached in BENCH_DATA_DIR/<N>/."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING

from bench.processes import run_child

if TYPE_CHECKING:
    from pathlib import Path

    from bench.processes import Measured


def ensure_data(n: int, seed: int, data_root: Path, env: dict, months: int) -> tuple[Path, Measured | None]:
    """Generated months for `n` users, reused when `generate.json` says they match."""
    from streamflow_dev import generate

    folder = data_root / str(n)
    manifest_path = folder / generate.MANIFEST
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        if (manifest.get("users"), manifest.get("seed"), manifest.get("generator_sha256")) == (
                n, seed, generate._own_digest()) and manifest.get("months", 0) >= months:
            print(f"data: reusing {folder} ({manifest['seconds']} s to generate)", flush=True)
            return folder, None
    print(f"data: generating {n} users x {months} months into {folder}", flush=True)
    measured = run_child("generate (streamflow_dev.generate)", [
        sys.executable, "-m", "streamflow_dev.generate", "--users", str(n), "--months", str(months),
        "--out", str(folder), "--seed", str(seed)], env=env)
    if not measured.ok:
        raise SystemExit("data generation failed")
    return folder, measured
