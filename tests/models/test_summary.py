"""`hamixer models` counts: one block stands for all, with the same numbers as the whole."""

import pytest
import torch

from hamixer.models import create_model
from hamixer.models.summary import summarize, summarize_by_name


@pytest.mark.parametrize("name", ["mlpmixer_s16_224", "symmixer_b16_224", "asymmixer_m4_28",
                                  "imixer_t4_28", "vanillamixer_n2_8", "vit_m4_28",
                                  "symformer_m4_28", "asymformer_s16_224"])
def test_counting_one_block_gives_the_numbers_of_the_whole_model(name):
    with torch.device("meta"):
        whole = summarize(name, create_model(name))
    fast = summarize_by_name(name)
    assert fast.params == whole.params and fast.input_size == whole.input_size
    assert fast.gmacs == pytest.approx(whole.gmacs, rel=1e-12)
    assert whole.params > 0 and whole.gmacs > 0


def test_the_counts_are_those_of_the_weights():
    model = create_model("paramixer_t4_28")
    assert summarize_by_name("paramixer_t4_28").params == sum(
        p.numel() for p in model.parameters())


def test_a_block_iterated_n_times_counts_every_application():
    from hamixer.models.summary import count_macs_by_module

    def block_macs(n_iter):
        with torch.device("meta"):
            model = create_model("symmixer_n2_8", n_iter=n_iter)
        return count_macs_by_module(model, (1, 8, 8))["HamMixer.blocks.0"]

    assert block_macs(3) == 3 * block_macs(1) > 0




def test_fused_attention_is_counted_on_the_cpu():
    """On the CPU, scaled_dot_product_attention runs a flash kernel the FLOP counter has no
    cost for; the count must still hold attention's two matmuls, as on the meta device."""
    from hamixer.models.summary import count_macs

    n, d, hidden, blocks = 49, 96, 192, 6  # paraformer_m4_28: 7×7 patches of 4×4 pixels
    per_block = 4 * n * d * d + 2 * n * d * hidden + 2 * n * n * d  # Q K V O, MLP, QKᵀ and PV
    expected = n * 16 * d + blocks * per_block + d * 10  # stem, blocks, head
    assert count_macs(create_model("paraformer_m4_28"), (1, 28, 28)) == expected
    vit = create_model("vit_m4_28")  # timm's attention, the class token besides
    with torch.device("meta"):
        assert count_macs(vit, (1, 28, 28)) == count_macs(create_model("vit_m4_28"), (1, 28, 28))
