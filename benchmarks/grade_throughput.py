"""Grading throughput: grade 200 copies of chapter 01's solution with --jobs 2; print JSON.

Target: 200 submissions in 60 s or less on a 2-core machine, each in its own fresh sandboxed
process. The time includes start-up (importing torch in the grader and its fork servers).

    python benchmarks/grade_throughput.py [--copies 200] [--jobs 2]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOLUTION = ROOT / "solutions" / "01_mle_coin_flips.ipynb"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--copies", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="grade-bench-"))
    try:
        subs = work / "submissions"
        subs.mkdir()
        for i in range(args.copies):
            shutil.copyfile(SOLUTION, subs / f"student_{i:03d}.ipynb")
        env = dict(os.environ, OMP_NUM_THREADS="1")
        cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "course_utils.assessment.grading", "01", str(subs),
                               "--out", str(work / "out"), "--jobs", str(args.jobs)],
                              env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (cpu_after.ru_utime + cpu_after.ru_stime) - (cpu_before.ru_utime + cpu_before.ru_stime)
        load = os.getloadavg()[0]
        with open(work / "out" / "grades.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        full = all(float(r["score"]) == float(r["max_score"]) and r["status"] == "ok" for r in rows)
        print(json.dumps({
            "submissions": len(rows),
            "jobs": args.jobs,
            "seconds": round(seconds, 2),
            "submissions_per_second": round(len(rows) / seconds, 2),
            "all_full_marks": full and len(rows) == args.copies and proc.returncode == 0,
            "cpu_seconds": round(cpu, 1),  # grader, fork servers and every sandboxed child
            "cpu_seconds_per_submission": round(cpu / max(1, len(rows)), 3),
            "load_average_1min_after": round(load, 2),  # other work on the machine slows the figure
            "target_seconds_for_200": 60,
        }))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
