import math

import pytest
import torch

from hamixer.experiments.symmetry import (
    attention_reference,
    attention_rows_from_flat,
    attention_weight_symmetry,
    bilinear_shares,
    flat_symmetry,
    format_attention_table,
    format_symmetry_table,
    mlp_symmetry,
    model_attention_symmetry,
    model_symmetry,
    plot_model_symmetry_blocks,
    rows_from_flat,
    symmetry_hook,
    symmetry_report,
    weight_symmetry,
)
from hamixer.models import AsymmetricMLP, FreeMLP, SymmetricMLP, create_model
from hamixer.models.find_layers import find_attention
from hamixer.models.symmetric_init import tie_symmetric


def test_tied_weights_are_perfectly_symmetric():
    m = mlp_symmetry(SymmetricMLP(6, 9))
    assert m["cosine"] == pytest.approx(1.0)
    assert m["scale"] == pytest.approx(1.0)
    assert m["residual"] == pytest.approx(0.0, abs=1e-7)
    assert m["coupling_antisym"] == pytest.approx(0.0, abs=1e-7)
    assert m["coupling_sym"] == pytest.approx(1.0)


@pytest.mark.parametrize("a", [2.0, -0.5])
def test_scaled_transpose_gives_scale_and_sign(a):
    w1 = torch.randn(5, 7)
    m = weight_symmetry(w1, a * w1.t())
    assert m["scale"] == pytest.approx(a)
    assert m["cosine"] == pytest.approx(math.copysign(1.0, a))
    assert m["residual"] == pytest.approx(0.0, abs=1e-7)


def test_independent_random_matrices_are_far_from_symmetric():
    torch.manual_seed(1)
    w1, w2 = torch.randn(200, 150), torch.randn(150, 200)
    m = weight_symmetry(w1, w2)
    assert abs(m["cosine"]) < 0.02
    assert m["residual"] == pytest.approx(math.sqrt(1 - m["cosine"] ** 2))
    assert 0.5 < m["coupling_antisym"] < 0.8  # random J: both parts have equal expected norm
    assert m["coupling_sym"] ** 2 + m["coupling_antisym"] ** 2 == pytest.approx(1.0)


def test_antisymmetric_coupling_is_detected():
    w1 = torch.eye(4)
    skew = torch.tensor([[0.0, 1, 0, 0], [-1, 0, 0, 0], [0, 0, 0, 1], [0, 0, -1, 0]])
    m = weight_symmetry(w1, skew)  # J = skew: purely antisymmetric
    assert m["coupling_antisym"] == pytest.approx(1.0)
    assert m["coupling_sym"] == pytest.approx(0.0, abs=1e-7)


def test_breaking_ratio_of_asymmetric_mlp():
    mlp = AsymmetricMLP(8, 4)
    with torch.no_grad():
        mlp.breaking.copy_(0.5 * mlp.weight.t())
    m = mlp_symmetry(mlp)
    assert m["breaking_ratio"] == pytest.approx(0.5)
    assert m["scale"] == pytest.approx(1.5)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="shape"):
        weight_symmetry(torch.randn(3, 4), torch.randn(3, 4))


def test_model_rows_and_flat_keys():
    model = create_model("asymmixer_n2_8")
    rows = model_symmetry(model)
    assert len(rows) == 2 * len(model.blocks)
    flat = flat_symmetry(model)
    assert "sym/0.token.cosine" in flat and "sym/mean.channel.breaking_ratio" in flat
    table = format_symmetry_table(rows)
    assert table.count("\n") == len(rows) + 1 and "‖W̃‖" in table


def test_symmetric_init_of_free_mlp_measures_tied():
    model = create_model("paramixer_n2_8", init="symmetric")
    assert all(r["cosine"] == pytest.approx(1.0) for r in model_symmetry(model))
    free = FreeMLP(5, 3)
    assert mlp_symmetry(free)["cosine"] < 0.9


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


# ------------------------------------------------------------- any model: timm, attention
def tiny_vit():
    import timm

    return timm.create_model("vit_tiny_patch16_224", img_size=28, patch_size=4, in_chans=1,
                             num_classes=10, embed_dim=64, depth=2, num_heads=2)


def test_bilinear_shares_match_the_full_matrix():
    torch.manual_seed(0)
    a, b = torch.randn(3, 4, 10), torch.randn(3, 4, 10)
    sym, anti = bilinear_shares(a, b)
    for h in range(3):
        m = a[h].t().double() @ b[h].double()
        assert sym[h] == pytest.approx((((m + m.t()) / 2).norm() / m.norm()).item())
        assert anti[h] == pytest.approx((((m - m.t()) / 2).norm() / m.norm()).item())
    # a symmetric M (b = a S with S symmetric) and a skew one (S = −Sᵀ)
    s, ones = torch.randn(4, 4), torch.ones(3, dtype=torch.float64)
    assert bilinear_shares(a, (s + s.t()) @ a)[0] == pytest.approx(ones)
    assert bilinear_shares(a, (s - s.t()) @ a)[1] == pytest.approx(ones)


def test_attention_measures_per_head_and_mean():
    torch.manual_seed(0)
    d, heads, hd = 8, 2, 4
    q = torch.randn(heads * hd, d)
    k = torch.cat([q[:hd], -q[hd:]])  # head 0: W_K = W_Q; head 1: W_K = −W_Q
    v, proj = torch.randn(heads * hd, d), torch.randn(d, heads * hd)
    out = attention_weight_symmetry(torch.cat([q, k, v]), proj, heads)
    assert out["per_head"]["qk_sym"] == pytest.approx([1.0, 1.0])  # −W_QᵀW_Q is symmetric too
    assert out["qk_antisym"] == pytest.approx(0.0, abs=1e-7)
    n = proj[:, :hd].double() @ v[:hd].double()  # head 0: N = W_O W_V
    assert out["per_head"]["vo_sym"][0] == pytest.approx(
        (((n + n.t()) / 2).norm() / n.norm()).item())
    assert out["vo_sym"] == pytest.approx(sum(out["per_head"]["vo_sym"]) / 2)


def test_value_output_against_query_key_per_head():
    """cos(N, M) and ‖N − M‖/‖M‖ of N = W_O^h W_V^h, M = W_Q^hᵀ W_K^h against the [D, D]
    matrices themselves; 1 and 0 for the tied map, −1 and 2 for its negative."""
    torch.manual_seed(0)
    d, heads, hd = 8, 2, 4
    q, k, v = torch.randn(heads * hd, d), torch.randn(heads * hd, d), torch.randn(heads * hd, d)
    proj = torch.randn(d, heads * hd)
    out = attention_weight_symmetry(torch.cat([q, k, v]), proj, heads)
    for h in range(heads):
        rows = slice(h * hd, (h + 1) * hd)
        n = proj[:, rows].double() @ v[rows].double()
        m = q[rows].double().t() @ k[rows].double()
        cos = ((n * m).sum() / (n.norm() * m.norm())).item()
        assert out["per_head"]["vo_qk_cosine"][h] == pytest.approx(cos)
        assert out["per_head"]["vo_qk_distance"][h] == pytest.approx(
            ((n - m).norm() / m.norm()).item())
    assert out["vo_qk_cosine"] == pytest.approx(sum(out["per_head"]["vo_qk_cosine"]) / 2)
    # tied: W_O = W_Qᵀ per head (proj's column block h), W_V = W_K; then its negative
    tied = attention_weight_symmetry(torch.cat([q, k, k]), q.t(), heads)
    assert tied["per_head"]["vo_qk_cosine"] == pytest.approx([1.0, 1.0])
    assert tied["vo_qk_distance"] == pytest.approx(0.0, abs=1e-7)
    neg = attention_weight_symmetry(torch.cat([q, k, -k]), q.t(), heads)
    assert neg["vo_qk_cosine"] == pytest.approx(-1.0) and neg["vo_qk_distance"] == \
        pytest.approx(2.0)
    wide = attention_weight_symmetry(torch.cat([q, k, v]), torch.randn(d + 1, heads * hd), heads)
    assert math.isnan(wide["vo_qk_cosine"]) and not math.isnan(wide["qk_symmetry_score"])


def test_references_are_chance_levels_and_cached():
    model = tiny_vit()
    mlp = model_symmetry(model, references=True)[0]
    attn = model_attention_symmetry(model, references=True)[0]
    ref = mlp["init"]
    assert abs(ref["cosine"]["mean"]) < 3 * ref["cosine"]["std"] + 1e-3
    assert 0 < ref["cosine"]["std"] < 0.05
    assert ref["coupling_antisym"]["mean"] == pytest.approx(0.71, abs=0.03)
    assert attn["init"]["qk_sym"]["mean"] == pytest.approx(0.71, abs=0.05)
    assert attn["init"]["qk_sym"]["std"] > 0
    assert abs(attn["init"]["vo_qk_cosine"]["mean"]) < 0.05  # independent maps: about 0
    assert attn["init"]["vo_qk_distance"]["mean"] == pytest.approx(math.sqrt(2), abs=0.05)
    # an untrained ViT reads like its reference; the cache answers the second block
    assert attn["qk_sym"] == pytest.approx(attn["init"]["qk_sym"]["mean"], abs=0.05)
    found = find_attention(model)
    assert attention_reference(found[0]) is attention_reference(found[1])


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
