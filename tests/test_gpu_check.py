"""benchmarks/gpu_check.py --dry-run: the GPU check's own code, on CPU at tiny sizes, so it
cannot rot between the rare windows in which a GPU runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


def test_the_gpu_check_runs_every_part_on_cpu(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("FTLAB_FAILPOINTS", None)
    result = subprocess.run([sys.executable, str(SCRIPT), "--dry-run", "--output-dir",
                             str(tmp_path)], capture_output=True, text=True, env=env,
                            timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    parts = report["parts"]
    assert list(parts) == ["environment", "throughput", "memory", "finetune", "torchrun"]
    assert all(part["ok"] for part in parts.values()), {
        name: part.get("error") for name, part in parts.items()}
    assert parts["environment"]["results"]["missing"] == []
    speeds = parts["throughput"]["results"]
    assert {"full", "bias", "tinytl"} <= set(speeds)
    assert all(speeds[s]["ftlab_images_per_s"] > 0 < speeds[s]["plain_images_per_s"]
               for s in ("full", "bias", "tinytl"))
    assert set(speeds["input_pipelines"]) == {"stock torchvision", "ftlab workers",
                                              "ftlab device"}
    memory = parts["memory"]["results"]
    assert memory["full stock batch 2"]["share_of_stock_full"] == 1.0
    assert memory["bias efficient batch 2"]["share_of_stock_full"] < 1.0
    # efficient = stock up to float32: as close to the float64 truth as stock float32 gets
    assert all(memory["gradients_within_fp32"].values()), memory["gradients"]
    assert memory["self_check"] and all(v["passed"] for v in memory["self_check"].values())
    finetune = parts["finetune"]["results"]
    assert 0 <= finetune["full"]["test_top1"] <= 100 and finetune["full"]["epochs"] == 2
    resume = finetune["resume"]
    assert resume["exit_code"] == 143 and resume["tensors_equal"] == resume["tensors"] > 0
    ddp = parts["torchrun"]["results"]
    assert ddp["backend"] == "gloo" and ddp["tensors_equal"] == ddp["tensors"]
    table = (tmp_path / "gpu_check.md").read_text()
    assert "| memory | | ran in" in table and "torchrun, 1 process on gloo" in table
    assert table in result.stdout


def test_a_failing_part_is_recorded_and_the_others_still_run(tmp_path):
    """A part that breaks (here: the fine-tune, on a machine without its GPU and mirror) leaves
    its error in the report, the next part runs, and the exit code says so."""
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import gpu_check
    finally:
        sys.path.remove(str(SCRIPT.parent))
    missing = tmp_path / "no-mirror"
    code = gpu_check.main(["--mirror", str(missing), "--output-dir", str(tmp_path / "out"),
                           "--parts", "finetune,environment"])
    report = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    assert code == 1
    error = report["parts"]["finetune"]["error"]
    assert not report["parts"]["finetune"]["ok"] and error.split(":")[0].endswith("Error")
    assert "Traceback" in report["parts"]["finetune"]["traceback"]
    assert "| finetune | | FAILED after" in (tmp_path / "out" / "gpu_check.md").read_text()
    assert report["parts"]["environment"]["ok"]
