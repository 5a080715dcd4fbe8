"""The training benchmark runs end to end (its --quick smoke mode) and prints the JSON the README quotes."""

import json
import subprocess
import sys
from pathlib import Path

from course_utils.runtime import cpu_has_bf16_matrix_units

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = str(ROOT / "benchmarks" / "train_lm.py")


def _run(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def test_train_lm_quick_prints_every_figure_and_a_time_ratio_per_preset():
    done = _run("--quick", "--threads", "1")
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert result["benchmark"] == "train_lm" and result["device"] == "cpu" and result["threads"] == 1
    assert result["cpu"] and isinstance(result["cpu"], str)
    for key in ("plain_pytorch_tokens_per_second", "tokens_per_second", "tokens_per_second_fp32",
                "peak_memory_mb", "time_ratio_default_vs_reference"):
        assert isinstance(result[key], (int, float)) and result[key] > 0, key
    plain = result["reference_plain_gpt"]
    assert plain["steps"] == 100 and plain["val_curve"][-1][0] == 100 and result["corpus"]["val_windows"] == 16
    assert plain["best_val_loss"] == min(v for _, v in plain["val_curve"])
    # both CPU recipes where the CPU has bf16 matrix units (cpu-fp32 is timed there too), else cpu-fp32
    expected = ["cpu", "cpu-fp32"] if cpu_has_bf16_matrix_units() else ["cpu-fp32"]
    assert list(result["presets"]) == expected == list(result["time_ratios"])
    assert result["default"] == result["presets"][result["machine_default_preset"]]
    for name, timed in result["presets"].items():
        assert timed["target_val_loss"] == plain["best_val_loss"]
        assert timed["time_ratio_vs_reference"] == result["time_ratios"][name]
        assert abs(timed["time_ratio_vs_reference"] - timed["seconds"] / plain["seconds"]) < 0.02
        assert timed["precision"] == ("bf16" if name == "cpu" else "fp32")
        # Stopping at the target means the last validation is the first at or below it.
        curve = timed["val_curve"]
        assert timed["reached_target"] == (curve[-1][1] <= timed["target_val_loss"])
        assert all(v > timed["target_val_loss"] for _, v in curve[:-1])
        assert f"time_ratio <= 0.5 ({name})" in result["targets_met"]
    assert "peak_memory < 1.5 GB" in result["targets_met"]


def test_train_lm_times_the_one_preset_it_is_asked_for():
    done = _run("--quick", "--threads", "1", "--preset", "cpu-fp32")
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert list(result["presets"]) == ["cpu-fp32"] and result["presets"]["cpu-fp32"]["model"]["n_layers"] == 2


def test_train_lm_rejects_a_bad_thread_count_or_preset():
    done = _run("--threads", "0", timeout=120)
    assert done.returncode == 2 and "--threads must be positive" in done.stderr
    done = _run("--preset", "tiny", timeout=120)
    assert done.returncode == 2 and "invalid choice: 'tiny'" in done.stderr
    done = _run("--preset", "gpu", "--device", "cpu", timeout=120)
    assert done.returncode != 0 and "another corpus or context than the reference" in done.stderr
