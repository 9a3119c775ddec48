"""The symmetry measures as a run records and shows them: flat keys, tables, plots, the report."""

import math

import pytest
import torch

from hamixer.experiments.symmetry import (
    attention_rows_from_flat,
    flat_symmetry,
    format_attention_table,
    format_symmetry_table,
    plot_model_symmetry_blocks,
    rows_from_flat,
    symmetry_hook,
)
from hamixer.measures.symmetry import (
    model_attention_symmetry,
    model_symmetry,
    symmetry_report,
)
from hamixer.models import create_model
from hamixer.models.symmetric_init import tie_symmetric
from measures.test_symmetry import tiny_vit


def test_model_rows_and_flat_keys():
    model = create_model("asymmixer_n2_8")
    rows = model_symmetry(model)
    assert len(rows) == 2 * len(model.blocks)
    flat = flat_symmetry(model)
    assert "sym/0.token.cosine" in flat and "sym/mean.channel.breaking_ratio" in flat
    table = format_symmetry_table(rows)
    assert table.count("\n") == len(rows) + 1 and "‖W̃‖" in table


def test_symmetry_plot_from_metrics_rows(tmp_path):
    from hamixer.experiments.symmetry import symmetry_series
    from hamixer.plots import plot_symmetry

    model = create_model("asymmixer_n2_8")
    rows = []
    for epoch in range(1, 4):
        with torch.no_grad():
            for blk in model.blocks:
                blk.channel_mlp.breaking.mul_(0.5)
        rows.append({"epoch": epoch, **flat_symmetry(model)})
    series = symmetry_series(rows)
    ratios = [v for _, v in series[(0, "channel", "breaking_ratio")]]
    assert ratios[0] > ratios[1] > ratios[2]
    out = tmp_path / "symmetry.png"
    plot_symmetry(series, out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="no symmetry"):
        plot_symmetry(symmetry_series([{"epoch": 1}]), tmp_path / "x.png")


def test_vit_tied_reads_symmetric_and_flat_keys():
    model = tiny_vit()
    tie_symmetric(model)
    report = symmetry_report(model, references=False)
    assert [(r["block"], r["mlp"]) for r in report["mlp"]] == [(0, "mlp"), (1, "mlp")]
    for r in report["mlp"]:
        assert r["cosine"] == pytest.approx(1.0)
        assert r["coupling_antisym"] == pytest.approx(0, abs=1e-6)
    for r in report["attention"]:
        assert r["qk_antisym"] == pytest.approx(0.0, abs=1e-6)
        assert r["qk_sym"] == pytest.approx(1.0)
        assert len(r["per_head"]["qk_sym"]) == 2
        # the tied start of energy attention: W_O^h W_V^h = W_Q^hᵀ W_K^h = W_Q^hᵀ W_Q^h
        assert r["vo_sym"] == pytest.approx(1.0) and r["vo_qk_cosine"] == pytest.approx(1.0)
        assert r["per_head"]["vo_qk_distance"] == pytest.approx([0.0, 0.0], abs=1e-7)
    flat = symmetry_hook(model, 1)
    assert {"sym/0.attn.qk_sym", "sym/1.attn.vo_antisym", "sym/mean.attn.qk_sym",
            "sym/1.mlp.cosine", "sym/mean.mlp.coupling_antisym"} <= set(flat)
    assert not any(k.startswith("symref") for k in flat)
    init = symmetry_hook(model, 0)
    assert init["symref/0.attn.qk_sym"] == pytest.approx(0.71, abs=0.05)
    assert "symref_std/1.mlp.cosine" in init
    back = attention_rows_from_flat(flat)
    assert [(r["block"], r["attn"]) for r in back] == [(0, "attn"), (1, "attn")]
    assert back[0]["qk_sym"] == flat["sym/0.attn.qk_sym"]
    assert [r["mlp"] for r in rows_from_flat(flat)] == ["mlp", "mlp"]


def test_tables_show_references_and_gated_mlps():
    from timm.layers import GluMlp

    glu = torch.nn.Sequential(torch.nn.ModuleDict({"mlp": GluMlp(8, 12)}))
    table = format_symmetry_table(model_symmetry(glu, references=True))
    assert "| 0 | mlp (GLU: value half) |" in table and "(init 0.0" in table
    table = format_attention_table(model_attention_symmetry(tiny_vit(), references=True))
    assert table.count("\n") == 3 and "| 1 | attn | 2 |" in table and "(init 0.7" in table


def test_blocks_plot_of_a_model(tmp_path):
    out = plot_model_symmetry_blocks(tiny_vit(), tmp_path / "blocks.png", "tiny ViT")
    assert (tmp_path / "blocks.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out


def test_report_means_table_for_mixers_and_vits():
    from hamixer.experiments.report import symmetry_means_table

    mixer = {"epoch": 3, **flat_symmetry(create_model("asymmixer_n2_8"))}
    table = symmetry_means_table([("asym", mixer, None)])
    assert "| run | epoch | cos(W2, W1ᵀ) tok / ch | residual tok / ch |" in table
    assert "‖W̃‖/‖W1ᵀ‖ tok / ch" in table and "QK" not in table
    vit = {"epoch": 0, **flat_symmetry(tiny_vit())}
    table = symmetry_means_table([("vit", {**vit, "epoch": 5}, vit)])
    assert "cos(W2, W1ᵀ) mlp" in table and "‖M_sym‖/‖M‖ (QK) attn" in table
    assert table.count("| vit |") == 2 and "W̃" not in table


def test_mean_over_seeds_of_metrics_rows():
    from hamixer.experiments.report import mean_over_seeds, symmetry_means_table

    a = {"epoch": 10, "test_acc": 90.0, "sym/mean.token.cosine": 0.5}
    b = {"epoch": 10, "test_acc": 91.0, "sym/mean.token.cosine": 0.7}
    assert mean_over_seeds([a]) is a
    row = mean_over_seeds([a, b])
    assert row["epoch"] == 10 and row["test_acc"] == 90.0  # not a symmetry measure: seed 0's
    mean, std = row["sym/mean.token.cosine"]
    assert mean == pytest.approx(0.6) and std == pytest.approx(math.sqrt(0.02))
    table = symmetry_means_table([("m", row, None)])
    assert "| m | 10 | 0.600 ± 0.141 / – |" in table


def test_small_measures_keep_their_digits():
    """A breaking ratio of 6e-5 (λ = 10) is not printed as 0.000; a zero's float noise is."""
    from hamixer.experiments.report import symmetry_means_table
    from hamixer.runs import format_measure

    assert format_measure(6.16e-5, 3) == "6.2e-05" and format_measure(0.5183, 3) == "0.518"
    assert format_measure(4e-4, 4) == "0.0004" and format_measure(4e-5, 4) == "4.0e-05"
    assert format_measure(1e-17, 3) == "0.000" and format_measure(0.0, 3) == "0.000"
    row = {"epoch": 10, "sym/mean.token.breaking_ratio": (6.16e-5, 3e-6),
           "sym/mean.channel.breaking_ratio": (1.36, 0.004)}
    assert "| 6.2e-05 ± 3.0e-06 / 1.360 ± 0.004 |" in symmetry_means_table([("m", row, None)])
