"""The weight-symmetry measures of one layer and of whole models (hamixer.measures.symmetry)."""

import math

import pytest
import torch

from hamixer.measures.symmetry import (
    attention_reference,
    attention_weight_symmetry,
    bilinear_shares,
    mlp_symmetry,
    model_attention_symmetry,
    model_symmetry,
    weight_symmetry,
)
from hamixer.models import AsymmetricMLP, FreeMLP, SymmetricMLP, create_model
from hamixer.models.find_layers import find_attention


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


def test_symmetric_init_of_free_mlp_measures_tied():
    model = create_model("paramixer_n2_8", init="symmetric")
    assert all(r["cosine"] == pytest.approx(1.0) for r in model_symmetry(model))
    free = FreeMLP(5, 3)
    assert mlp_symmetry(free)["cosine"] < 0.9


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
