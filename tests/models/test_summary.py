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
