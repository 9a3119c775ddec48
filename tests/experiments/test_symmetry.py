import math

import pytest
import torch

from hamixer.experiments.symmetry import (
    flat_symmetry,
    format_symmetry_table,
    mlp_symmetry,
    model_symmetry,
    weight_symmetry,
)
from hamixer.models import AsymmetricMLP, FreeMLP, SymmetricMLP, create_model


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
