"""The training benchmark runs end to end (its --quick smoke mode) and prints the JSON the README quotes."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_train_lm_quick_prints_every_figure_as_json():
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "train_lm.py"), "--quick", "--threads", "1"],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert result["benchmark"] == "train_lm" and result["device"] == "cpu" and result["threads"] == 1
    for key in ("plain_pytorch_tokens_per_second", "tokens_per_second", "tokens_per_second_fp32",
                "wall_time_to_target_seconds", "peak_memory_mb", "time_ratio_default_vs_reference"):
        assert isinstance(result[key], (int, float)) and result[key] > 0, key
    plain, default = result["reference_plain_gpt"], result["default"]
    assert plain["steps"] == 100 and plain["val_curve"][-1][0] == 100 and result["corpus"]["val_windows"] == 16
    assert plain["best_val_loss"] == min(v for _, v in plain["val_curve"])
    assert default["target_val_loss"] == plain["best_val_loss"]
    assert default["precision"] == result["tokens_per_second_precision"] in ("bf16", "fp32")
    # Stopping at the target means the last validation is the first at or below it.
    curve = default["val_curve"]
    assert default["reached_target"] == (curve[-1][1] <= default["target_val_loss"])
    assert all(v > default["target_val_loss"] for _, v in curve[:-1])
    assert set(result["targets_met"]) >= {"time_ratio <= 0.5", "peak_memory < 1.5 GB"}


def test_train_lm_rejects_a_bad_thread_count():
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "train_lm.py"), "--threads", "0"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 2 and "--threads must be positive" in done.stderr
