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
    for name in ("bench224", "bench28"):
        assert all(r["mfu_mm"] > 0 and r["kernels"]["top"] for r in sections[name]["rows"])
    assert sections["env"]["mm_peak_flops_per_s"] > 0
    import hamixer

    scale = sections["scale224"]
    mixers = [r for r in scale["rows"] if r["reference"] == "timm"]
    got = {(r["variant"], r["shape"], r["batch"], r["model"]) for r in mixers}
    assert got == {(v, s, b, m) for v in plan["scale_variants"] for s in plan["scale_sizes"]
                   for b in plan["scale_batches"] for m in plan["scale_models"]}
    # the Transformer family at each size, against timm's ViT of that size
    formers = {r["model"] for r in scale["rows"] if r["reference"] != "timm"}
    expected = {n for s in plan["scale_sizes"] for n in hamixer.list_models(f"*former_{s}")}
    assert expected <= formers and all(m in expected or m.startswith("vit_") for m in formers)
    graphs = sections["graphs28"]
    assert {r["variant"] for r in graphs["rows"]} == set(plan["graph_variants"])
    assert {r["cuda_graph"] for r in graphs["rows"]} == {True, False}
    assert {r["compile_mode"] for r in graphs["rows"]} == {None, "reduce-overhead"}
    for row in scale["rows"] + graphs["rows"]:
        assert row["mode"] == "train" and row["img_per_s"] > 0
        assert row["reference"] == "timm" or row["reference"].startswith("vit_")
        assert row["mfu"] > 0 and row["mfu_mm"] > 0
        top = row["kernels"]["top"]
        assert row["kernels"]["by"] == "cpu time" and 0 < len(top) <= 10
    assert all(r["vs_eager"] > 0 for r in graphs["rows"])
    for sec in (scale, graphs):  # without a Transformer family: skipped, and the reason given
        if not hamixer.list_models("*former*"):
            assert all("is empty" in why for why in sec["transformers_skipped"].values())
    probe = sections["bench28"]["launch_probe"]
    assert probe and all(0 <= p["fixed_share"] <= 1 for p in probe)
    assert isinstance(sections["bench28"]["launch_bound"], bool)
    runs = sections["train"]["runs"]
    assert runs["device"]["test_acc"] >= 0 and runs["device"]["dataset"] == "mnist"
    torchrun = sections["torchrun"]
    assert torchrun["backend"] == "gloo" and torchrun["run"]["process_group"]
    table = (tmp_path / "gpu_check.md").read_text()
    assert "| bench28 | ok |" in table and "Launch probe" in table and "| torchrun |" in table
    assert "## scale224" in table and "## graphs28" in table and "× own eager" in table


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


def _dry_context(tmp_path, **changes):
    gc = _gpu_check()
    plan = gc.Plan(**{**gc.asdict(gc.DRY), **changes})
    return gc.Context(plan, tmp_path, tmp_path, None, "mnist")


def test_transformer_rows_are_measured_against_the_vit_of_the_size(tmp_path, monkeypatch):
    """A Transformer registered under ``*former*`` gets rows at its size, with timm's ViT of
    that size as the reference; other sizes say why they have none."""
    import hamixer
    from hamixer.models.timm_models import PRESETS

    gc = _gpu_check()
    family = hamixer.list_models("*former_n2_8")  # the registered Transformers
    # a stand-in for the family: the ViT preset's architecture under a *former* name
    monkeypatch.setitem(PRESETS, "testformer_n2_8", PRESETS["vit_n2_8"])
    assert gc.transformer_group("n2_8") == (["vit_n2_8", *family, "testformer_n2_8"], None)
    assert gc.transformer_group("s16_224")[0] == ["vit_small_patch16_224",
                                                  *hamixer.list_models("*former_s16_224")]
    ctx = _dry_context(tmp_path, scale_sizes=("n2_8", "t4_28"), scale_batches=(2,),
                       scale_variants=("fp32",), scale_models=("timm",), rounds=1)
    result = {}
    gc.section_scale(ctx, result, deadline=float("inf"))
    rows = {(r["shape"], r["model"]): r for r in result["rows"]}
    assert set(rows) == {("n2_8", "timm"), ("t4_28", "timm"), ("n2_8", "vit_n2_8"),
                         ("n2_8", "testformer_n2_8"), *(("n2_8", n) for n in family),
                         *(("t4_28", n) for n in ("vit_t4_28",
                                                  *hamixer.list_models("*former_t4_28")))}
    former = rows[("n2_8", "testformer_n2_8")]
    assert former["reference"] == "vit_n2_8" and former["frac_of_mm_limit"] is None
    assert former["gflops_per_img"] == rows[("n2_8", "vit_n2_8")]["gflops_per_img"] > 0
    assert rows[("t4_28", "symformer_t4_28")]["reference"] == "vit_t4_28"


def test_without_the_family_its_rows_are_skipped_with_the_reason(monkeypatch):
    import hamixer

    gc = _gpu_check()
    monkeypatch.setattr(hamixer, "list_models", lambda pattern="*": [])
    candidates, reason = gc.transformer_group("s16_224")
    assert candidates == [] and "list_models('*former*') is empty" in reason
    monkeypatch.setattr(hamixer, "list_models", lambda pattern="*": ["symformer_n2_8"])
    candidates, reason = gc.transformer_group("t4_28")  # registered, not at this size
    assert candidates == [] and "no *former* model at size t4_28" in reason


def test_variants_name_how_the_step_runs():
    gc = _gpu_check()
    plan = gc.REAL
    assert gc._step_kwargs("bf16", plan) == dict(compile_backend=None, compile_mode=None,
                                                 cuda_graph=False)
    assert gc._step_kwargs("bf16+cudagraph", plan)["cuda_graph"] is True
    assert gc._step_kwargs("bf16+reduce-overhead", plan) == dict(
        compile_backend="inductor", compile_mode="reduce-overhead", cuda_graph=False)
    assert gc._compiles("fp32+compile") and not gc._compiles("bf16+cudagraph")
    assert set(plan.scale_sizes) == {"s16_224", "b16_224", "l16_224"}
    assert plan.scale_batches == (128, 256) and set(plan.scale_variants) == {
        "bf16", "bf16+compile"}
    assert "bf16+cudagraph" in plan.graph_variants and "bf16+reduce-overhead" in \
        plan.graph_variants and plan.graph_size == "m4_28"
