"""lens.cost: a forward's FLOPs counted on fake tensors equal those of a real forward."""
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from blocks import attention_resnet
from lens import cost


def real_flops(model, size: int) -> int:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(1, 3, size, size))
    return counter.get_total_flops()


@pytest.mark.slow
def test_fake_count_equals_a_real_forwards_and_grows_with_the_stem_and_the_size(kind):
    pooled = attention_resnet(18, kind, num_classes=10, width=8, ratio=4).eval()
    stemless = attention_resnet(18, kind, num_classes=10, width=8, ratio=4, stem_pool=False).eval()
    for model in (pooled, stemless):
        for size in (64, 96):
            assert cost.forward_flops(model, size) == real_flops(model, size)
    assert 2.5 < cost.forward_flops(stemless, 96) / cost.forward_flops(pooled, 96) < 4   # all but the stem conv: 4x
    assert cost.forward_flops(pooled, 128) > 3.9 * cost.forward_flops(pooled, 64)


def test_an_imagenet_resnet_50_is_8_gflop_and_passes():
    model = attention_resnet(50).eval()
    assert round(cost.forward_flops(model, 224) / 1e9, 2) == 8.18       # torchvision's 4.09 GMACs, twice
    assert cost.too_costly(model, 224) == ""


def test_a_model_past_the_budget_says_what_to_do(monkeypatch):
    model = attention_resnet(18, "cbam", num_classes=10, width=8, ratio=4).eval()
    monkeypatch.setattr(cost, "MAX_FORWARD_FLOPS", cost.forward_flops(model, 64))
    assert cost.too_costly(model, 64) == ""
    assert cost.too_costly(model, 96).startswith(
        f"At 96 px this model needs {cost.forward_flops(model, 96) / 1e9:,.0f} GFLOP per image; this server runs at most 0")
