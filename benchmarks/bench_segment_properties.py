"""Segment properties from a DataFrame: nglive against nglui, side by side in one run.

Each (tool, rows) pair runs in a fresh Python subprocess. Memory is the whole
process's resident set: ``rss_table_mb`` once the DataFrame is built, and
``peak_rss_mb``, the high-water mark *during the calls* (interpreter, imports, the
DataFrame and the encoding; the kernel's peak counter is reset after the table is
built, so transients of building the test table itself are not counted against a
tool). Wall time covers building the properties *and* serialising the ``info`` JSON;
it is the best of ``--repeat`` runs inside the subprocess (one run at 1M rows, so
that number includes a cold first call).

    python benchmarks/bench_segment_properties.py            # 10k, 100k, 1M
    python benchmarks/bench_segment_properties.py --rows 10000 100000

Writes benchmarks/results/segment_properties.json.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

from proc_memory import reset_peak_rss, status_mb

RESULTS = Path(__file__).parent / "results" / "segment_properties.json"
KEYWORDS = dict(
    id_col="pt_root_id",
    label_col="cell_label",
    number_cols=["n_synapses", "volume"],
    tag_value_cols="cell_type",
    tag_bool_cols=["proofread"],
)


def make_table(n: int, seed: int = 0):
    """uint64 ids near 7.2e17, a label, an int and a float, ~20 tag values, one flag."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    ids = np.uint64(720575940000000000) + (
        np.arange(n, dtype=np.uint64) * np.uint64(1000)
        + rng.integers(0, 1000, n).astype(np.uint64)
    )
    rng.shuffle(ids)
    types = np.array([f"type {chr(65 + i)}{i}" for i in range(20)], dtype=object)
    return pd.DataFrame(
        {
            "pt_root_id": ids,
            "cell_label": "neuron_" + pd.Series(np.arange(n)).astype(str),
            "n_synapses": rng.integers(0, 20000, n),
            "volume": rng.random(n) * 1e3,
            "cell_type": types[rng.integers(0, len(types), n)],
            "proofread": rng.random(n) < 0.3,
        }
    )


def run_nglui(df) -> bytes:
    from nglui.segmentprops import SegmentProperties

    return json.dumps(SegmentProperties.from_dataframe(df, **KEYWORDS).to_dict()).encode()


def run_nglive(df) -> bytes:
    from nglive.formats.segment_properties import segment_properties_json

    return segment_properties_json(df, **KEYWORDS)


def child(tool: str, n: int, repeat: int) -> dict:
    df = make_table(n)
    gc.collect()
    fn = {"nglui": run_nglui, "nglive": run_nglive}[tool]
    if tool == "nglui":
        import nglui.segmentprops  # noqa: F401  (imports are not part of the timing)
    else:
        import nglive.formats.segment_properties  # noqa: F401
    peak_building_table = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    rss_table = status_mb("VmRSS")
    reset_peak_rss()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn(df)
        times.append(time.perf_counter() - t0)
        size = len(out)
        del out
    peak = status_mb("VmHWM")
    return {
        "tool": tool, "rows": n, "seconds": min(times), "all_seconds": times,
        "peak_rss_mb": round(peak, 1), "rss_table_mb": round(rss_table, 1),
        "peak_while_building_table_mb": round(peak_building_table, 1),
        "json_bytes": size,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, nargs="*", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--tools", nargs="*", default=["nglui", "nglive"])
    ap.add_argument("--child", nargs=3, metavar=("TOOL", "ROWS", "REPEAT"), help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    if args.child:
        tool, n, repeat = args.child
        print(json.dumps(child(tool, int(n), int(repeat))))
        return

    runs = []
    for n in args.rows:
        repeat = 3 if n <= 100_000 else 1
        for tool in args.tools:
            proc = subprocess.run(
                [sys.executable, __file__, "--child", tool, str(n), str(repeat)],
                capture_output=True, text=True, check=True,
            )
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            runs.append(r)
            print(f"{tool:7s} {n:>9,d} rows  {r['seconds']:8.3f} s  "
                  f"peak {r['peak_rss_mb']:7.1f} MB  ({r['json_bytes']:,} bytes)", flush=True)
    table = []
    for n in args.rows:
        by = {r["tool"]: r for r in runs if r["rows"] == n}
        if {"nglui", "nglive"} <= by.keys():
            table.append({
                "rows": n,
                "nglui_s": round(by["nglui"]["seconds"], 4),
                "nglive_s": round(by["nglive"]["seconds"], 4),
                "speedup": round(by["nglui"]["seconds"] / by["nglive"]["seconds"], 1),
                "nglui_peak_mb": by["nglui"]["peak_rss_mb"],
                "nglive_peak_mb": by["nglive"]["peak_rss_mb"],
            })
    for row in table:
        print(row)
    try:
        from importlib.metadata import version
        versions = {p: version(p) for p in ("nglui", "pandas", "numpy")}
    except Exception:  # noqa: BLE001
        versions = {}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "benchmark": "segment properties from a DataFrame, JSON bytes included",
        "memory": "whole-process RSS high-water mark during the calls, fresh subprocess per "
                  "tool and size, peak counter reset once the table is built",
        "keywords": KEYWORDS,
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
        "versions": versions,
        "summary": table,
        "runs": runs,
    }, indent=2) + "\n")


if __name__ == "__main__":
    main()
