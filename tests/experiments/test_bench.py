"""The benchmark harness: analytic FLOPs, GEMM shapes, tiny runs, the CLI; no timing asserts."""

from __future__ import annotations

import json

import pytest
import torch

from hamixer import ConfigError
from hamixer.cli import main
from hamixer.experiments.bench import (
    SHAPES,
    build_candidate,
    gemm_shapes,
    mixer_flops,
    mixer_geometry,
    run_benchmark,
)
from hamixer.models.summary import count_macs


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("candidate", ["timm", "mlpmixer", "symmixer"])
def test_analytic_flops_equal_counted_flops(shape, candidate):
    model = build_candidate(candidate, shape)
    counted = 2 * count_macs(model, tuple(model.pretrained_cfg["input_size"]))
    assert mixer_flops(mixer_geometry(shape)) == counted


def test_gemm_shapes_cover_forward_and_both_gradients():
    g = mixer_geometry("28")
    shapes = gemm_shapes(g, batch=2)
    bs = 2 * g["S"]
    assert (bs, g["C"], g["H_ch"]) in shapes  # channel fc1 forward
    assert (bs, g["H_ch"], g["C"]) in shapes  # its input gradient (and fc2 forward)
    assert (g["C"], bs, g["H_ch"]) in shapes  # its weight gradient
    assert (2 * g["C"], g["S"], g["H_tok"]) in shapes  # token fc1, batch folded


def test_tiny_run_reports_every_candidate():
    threads_before = torch.get_num_threads()
    res = run_benchmark(["28"], ["fp32"], ["infer"], ["timm", "symmixer"], rounds=1,
                        warmup=0, threads=1, device="cpu")
    rows = res["rows"]
    assert [r["model"] for r in rows] == ["timm", "symmixer"]
    assert rows[0]["ratio_vs_timm"] == 1.0
    for r in rows:
        assert r["img_per_s"] > 0 and r["cpu_img_per_s"] > 0 and r["peak_mem_mb"] > 0
        assert 0 < r["frac_of_mm_limit"] < 10
    limit = res["limits"]["28/fp32"]
    assert limit["flops_per_s"] > 0 and tuple(limit["shape"]) in gemm_shapes(
        mixer_geometry("28"), SHAPES["28"]["batch"])
    assert res["meta"]["threads"] == 1
    assert torch.get_num_threads() == threads_before  # the pin is undone


def test_training_step_memory_is_larger_than_inference():
    res = run_benchmark(["28"], ["fp32"], ["train", "infer"], ["paramixer"], rounds=1,
                        warmup=1, threads=1, device="cpu")
    train, infer = res["rows"]
    assert train["mode"] == "train" and infer["mode"] == "infer"
    assert train["gflops_per_img"] == pytest.approx(3 * infer["gflops_per_img"])
    assert train["peak_mem_mb"] > 2 * infer["peak_mem_mb"]  # activations kept for backward


@pytest.mark.parametrize("kwargs, match", [
    (dict(shapes=["99"], dtypes=["fp32"]), "unknown shape"),
    (dict(shapes=["28"], dtypes=["fp16"]), "unknown dtype"),
    (dict(shapes=["28"], dtypes=["fp32"], candidates=["resnet"]), "unknown candidate"),
    (dict(shapes=["28"], dtypes=["fp32"], rounds=0), "rounds"),
    (dict(shapes=["28"], dtypes=["fp32"], threads=0), "threads"),
])
def test_bad_arguments_raise_config_error(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        run_benchmark(**kwargs)


def test_cli_writes_json_and_prints_table(tmp_path, capsys):
    out = tmp_path / "bench.json"
    argv = ["bench", "--shape", "28", "--mode", "infer", "--models", "timm,paramixer",
            "--rounds", "1", "--warmup", "0", "--threads", "1", "--device", "cpu",
            "--json", str(out)]
    assert main(argv) == 0
    table = capsys.readouterr().out
    assert "| 28/b128 | fp32 | infer | paramixer |" in table and "matmul limit" in table
    data = json.loads(out.read_text())
    assert {r["model"] for r in data["rows"]} == {"timm", "paramixer"}


def test_cli_bad_model_is_one_line_error(capsys):
    assert main(["bench", "--models", "timm,nosuch", "--rounds", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("hamixer bench: error:") and "\n" not in err


def test_group_compiles_overrides_the_batch_and_skips_after_the_deadline():
    import time

    from hamixer.experiments.bench import matmul_limit, measure_group

    dev = torch.device("cpu")
    limit = matmul_limit(gemm_shapes(mixer_geometry("8"), 4), dev, "fp32")
    # aot_eager: Dynamo's capture without inductor's C++ code generation (seconds, not a minute)
    rows, skipped = measure_group(["timm", "symmixer"], "8", 4, "fp32", "train", dev, limit,
                                  rounds=1, warmup=1, compile_backend="aot_eager")
    assert skipped == [] and [r["model"] for r in rows] == ["timm", "symmixer"]
    assert all(r["batch"] == 4 and r["compile"] == "aot_eager" and r["img_per_s"] > 0
               for r in rows)
    rows, skipped = measure_group(["timm", "paramixer"], "8", 4, "fp32", "infer", dev, limit,
                                  rounds=1, warmup=0, deadline=time.monotonic() - 1)
    assert rows == [] and skipped == ["timm", "paramixer"]


def test_analytic_flops_follow_the_size_mlp_ratio():
    # m4_28's channel MLP is 2C wide, not 4C: timm's MlpMixer gets the same ratio
    model = build_candidate("timm", "m4_28")
    counted = 2 * count_macs(model, tuple(model.pretrained_cfg["input_size"]))
    assert mixer_flops(mixer_geometry("m4_28")) == counted
    assert mixer_geometry("m4_28")["H_ch"] == 2 * mixer_geometry("m4_28")["C"]


def test_unknown_size_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown shape 'z9_9'"):
        mixer_geometry("z9_9")


def test_any_model_is_counted_with_attention_as_matrix_products():
    from hamixer.experiments.bench import counted_flops, forward_flops

    # vit_n2_8: 16 patches of 1×2×2 and a class token (S = 17), width 64, 4 blocks, MLP 2×,
    # 10 classes; the attention products QKᵀ and AV are S·S·C multiply-accumulates each
    s, c = 17, 64
    block = s * c * 3 * c + s * c * c + 2 * s * c * 2 * c + 2 * s * s * c
    macs = 16 * 4 * c + 4 * block + c * 10
    vit = build_candidate("vit_n2_8", "n2_8")
    assert counted_flops(vit) == forward_flops("vit_n2_8", "n2_8", vit) == 2 * macs


def test_graphed_and_mode_compiled_steps_and_the_kernel_breakdown_on_cpu():
    from hamixer.experiments.bench import measure_group

    dev = torch.device("cpu")
    # a CUDA graph has nothing to record on a CPU: the step runs as written (the dry run)
    rows, _ = measure_group(["vit_n2_8", "paramixer"], "n2_8", 2, "bf16", "train", dev, None,
                            rounds=1, warmup=1, cuda_graph=True, profile_top=3)
    assert [r["reference"] for r in rows] == ["vit_n2_8"] * 2  # no timm: the first sets ratios
    assert rows[0]["ratio_vs_timm"] == 1.0 and rows[0]["frac_of_mm_limit"] is None
    for r in rows:
        k = r["kernels"]
        assert r["cuda_graph"] and k["by"] == "cpu time" and 1 <= len(k["top"]) <= 3
        assert k["top"][0]["us"] >= k["top"][-1]["us"] > 0
        assert 0 < sum(x["share"] for x in k["top"]) <= 1 + 1e-9
    rows, _ = measure_group(["timm"], "n2_8", 2, "fp32", "train", dev, None, rounds=1,
                            warmup=1, compile_backend="eager", compile_mode="reduce-overhead")
    assert rows[0]["compile_mode"] == "reduce-overhead" and "kernels" not in rows[0]
