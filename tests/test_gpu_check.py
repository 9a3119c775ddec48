"""``benchmarks/gpu_check.sh --dry-run``: every section of the GPU check on the CPU at tiny
sizes, end to end, so the script cannot rot without a GPU; and its one-line input errors."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.integration  # runs the command line end to end

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"


def _gpu_check():
    """The script as a module (registered first: its dataclasses look themselves up there)."""
    if "gpu_check" not in sys.modules:
        spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
        sys.modules["gpu_check"] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules["gpu_check"])
    return sys.modules["gpu_check"]


@pytest.mark.slow  # the whole check script, torchrun included
def test_dry_run_writes_every_section_without_errors(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--dry-run",
                          "--out", str(tmp_path)], env=env, capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    sections = report["sections"]
    assert list(sections) == list(_gpu_check().SECTIONS) and report["meta"]["dry_run"]
    for name, sec in sections.items():
        assert sec["status"] == "ok" and sec["error"] is None, (name, sec.get("error"))
    assert sections["env"]["peak_flops_per_s"] > 0
    tests = sections["tests"]  # collected and skipped: there is no CUDA device
    assert tests["skipped"] > 0 and tests["passed"] == tests["failed"] == tests["errors"] == 0
    plan = report["meta"]["plan"]
    for name in ("bench224", "bench28"):
        rows = sections[name]["rows"]
        got = {(r["variant"], r["mode"], r["model"]) for r in rows}
        assert got == {(v, m, c) for v in plan["variants"] for m in ("train", "infer")
                       for c in plan["models"]}
        assert all(r["img_per_s"] > 0 and r["mfu"] > 0 for r in rows)
        assert {r["compile"] for r in rows} == {None, "eager"}
    probe = sections["bench28"]["launch_probe"]
    assert probe and all(0 <= p["fixed_share"] <= 1 for p in probe)
    assert isinstance(sections["bench28"]["launch_bound"], bool)
    runs = sections["train"]["runs"]
    assert runs["device"]["test_acc"] >= 0 and runs["device"]["dataset"] == "mnist"
    torchrun = sections["torchrun"]
    assert torchrun["backend"] == "gloo" and torchrun["run"]["process_group"]
    table = (tmp_path / "gpu_check.md").read_text()
    assert "| bench28 | ok |" in table and "Launch probe" in table and "| torchrun |" in table


def test_generated_digits_are_idx_files_the_loader_reads(tmp_path):
    from hamixer.data import load_split

    _gpu_check().generate_digits28(tmp_path)
    train = load_split("mnist", True, tmp_path)
    test = load_split("mnist", False, tmp_path)
    assert train.images.shape[1:3] == (28, 28) and len(train.labels) == 1437
    assert len(test.labels) == 360 and set(train.labels.tolist()) == set(range(10))


@pytest.mark.parametrize("argv, needle", [
    (["--dry-run", "--sections", "env,nope"], "unknown section nope"),
    (["--dry-run", "--variants", "fp16"], "unknown variant fp16"),
    (["--dry-run", "--models", "timm,resnet"], "unknown model resnet"),
    (["--dry-run", "--box", "bench28=0"], "--box expects SECTION=SECONDS"),
    (["--dry-run", "--peak-tflops", "-1"], "--peak-tflops must be > 0"),
    (["--dry-run", "--data-dir", "/nonexistent/fmnist"], "is not a folder"),
    pytest.param([], "no CUDA device", marks=pytest.mark.skipif(
        torch.cuda.is_available(), reason="a CUDA device is present")),
])
def test_bad_input_is_one_line_and_status_2(argv, needle, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _gpu_check().parse_args(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("gpu_check: error:") and needle in err and err.count("\n") == 1
