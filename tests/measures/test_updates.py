"""How training moved an MLP: cos(ΔW2, ΔW1ᵀ) and the relative moves (hamixer.measures.updates)."""

import math

import pytest
import torch

from hamixer.errors import HamixerError
from hamixer.experiments.weight_updates import format_update_table
from hamixer.measures.updates import model_weight_updates, weight_update
from hamixer.models import create_model


def test_tied_independent_and_shared_moves():
    w1_0, w2_0 = torch.randn(32, 16), torch.randn(16, 32)
    step = torch.randn(32, 16)
    tied = weight_update(w1_0, w2_0, w1_0 + step, w2_0 + step.t())
    assert tied["update_cosine"] == pytest.approx(1.0)
    assert tied["w1_moved"] == pytest.approx((step.norm() / w1_0.norm()).item(), rel=1e-6)
    # updated independently: about 0 (the standard deviation is 1/sqrt(512))
    free = weight_update(w1_0, w2_0, w1_0 + step, w2_0 + torch.randn(16, 32))
    assert abs(free["update_cosine"]) < 0.2
    # W2 = W1ᵀ + W̃ with a W̃ step as large as W1's, independent of it: 1/√2
    shared = weight_update(w1_0, w2_0, w1_0 + step, w2_0 + step.t() + torch.randn(16, 32))
    assert shared["update_cosine"] == pytest.approx(1 / math.sqrt(2), abs=0.1)
    unmoved = weight_update(w1_0, w2_0, w1_0, w2_0)
    assert math.isnan(unmoved["update_cosine"]) and unmoved["w2_moved"] == 0


def test_model_rows_and_means():
    torch.manual_seed(0)
    start = create_model("symmixer_n2_8", num_blocks=2)
    trained = create_model("symmixer_n2_8", num_blocks=2)
    trained.load_state_dict(start.state_dict())
    with torch.no_grad():
        for p in trained.parameters():
            p.add_(0.1 * torch.randn_like(p))
    rows = model_weight_updates(start, trained)
    assert [(r["block"], r["mlp"]) for r in rows] == [
        (0, "token"), (0, "channel"), (1, "token"), (1, "channel"),
        ("mean", "token"), ("mean", "channel")]
    assert all(r["update_cosine"] == pytest.approx(1.0) for r in rows)  # one tied matrix
    table = format_update_table(rows)
    assert "| mean | channel | 1.0000 |" in table and "cos(ΔW2, ΔW1ᵀ)" in table


def test_layouts_must_match():
    with pytest.raises(HamixerError, match="no MLP like"):
        model_weight_updates(create_model("symmixer_n2_8", num_blocks=1),
                             create_model("symmixer_n2_8", num_blocks=2))
