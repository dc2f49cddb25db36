"""benchmarks/gpu_check.py in CPU mode: every CUDA-only check says SKIP, its CPU stand-in and the
other checks PASS, nothing FAILs, and the script exits 0."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
CUDA_ONLY = (
    "transfer", "composition", "train bf16", "train fp16 + GradScaler", "resume cpu -> cuda fp16", "minutes 0.1",
    "evaluate cuda vs cpu", "lr range test", "ddp 2 processes",
)  # fmt: skip
EVERYWHERE = ("dataset", "device", "midas batching", "throughput")
LINE = re.compile(r"^(PASS|FAIL|SKIP)  (.+?)  (\d+\.\d)s  (.*)$")


@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU mode of the check; on a GPU run it by hand")
def test_gpu_check_passes_on_a_cpu_with_its_stand_ins():
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "gpu_check.py")],
        cwd=REPO, capture_output=True, text=True, timeout=600, env=environment,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    lines = [LINE.match(line) for line in done.stdout.splitlines()[:-1]]
    assert all(lines), f"a line not of the form 'STATUS  name  seconds  detail':\n{done.stdout}"
    status = {match[2]: match[1] for match in lines}
    assert "FAIL" not in status.values(), done.stdout
    for name in CUDA_ONLY:
        assert status[name] == "SKIP" and status[f"{name} [cpu stand-in]"] == "PASS", name
    for name in EVERYWHERE:
        assert status[name] == "PASS", name
    assert done.stdout.splitlines()[-1].startswith("0 failed")
