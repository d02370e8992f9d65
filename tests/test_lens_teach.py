"""The "What this block computes" text: formulas match the module that actually runs."""
import pytest
import torch

from blocks import attention_resnet, capture_attention
from lens.teach import explain


def explained(attention: str, **options) -> list[str]:
    torch.manual_seed(0)
    model = attention_resnet(18, attention, num_classes=10, width=16, **options).eval()
    record = capture_attention(model, torch.randn(1, 3, 64, 64)).layers[0]        # layer1.0: 16 channels
    return explain(model.get_submodule(record.module), record, model).splitlines()


@pytest.mark.parametrize("mode, words, formula", [("avg", "average", "avgpool"), ("max", "maximum", "maxpool")])
def test_se_text_names_the_squeeze_that_runs(mode, words, formula):
    lines = explained("se", se_mode=mode, ratio=4)
    assert lines[0] == "**layer1.0** -- SE on a feature map of 16 channels x 16 x 16"
    assert lines[2] == (f"- SE (Hu et al., CVPR 2018): squeeze by global {words} pooling -> FC 16 -> 4 -> ReLU "
                        "-> FC 4 -> 16 -> sigmoid -> scale each channel")
    assert lines[4] == f"- `w = sigmoid(W2 relu(W1 {formula}(x)))`, `y = w * x` (one weight per channel)"


def test_eca_text_gives_k_its_neighbours_and_a_readable_share():
    lines = explained("eca", k_size=(3, 3, 5, 5))
    model = attention_resnet(18, "eca", num_classes=10, width=16, k_size=(3, 3, 5, 5))
    total = sum(p.numel() for p in model.parameters())
    assert 100 * 3 / total < 0.001
    assert lines[1] == f"- parameters of this attention block: **3** (under 0.001% of the model's {total:,})"
    assert "sees itself and its (k - 1) / 2 neighbours on each side" in lines[3]
    assert "kernel k = 3 " in lines[2]


def test_cbam_formulas_follow_the_variant():
    mlp_bn = explained("cbam", ratio=4)
    assert mlp_bn[3].endswith("`Mc = sigmoid(MLP(avgpool x) + MLP(maxpool x))`")
    assert "7x7 conv -> BatchNorm -> sigmoid" in mlp_bn[4]
    assert "`Ms = sigmoid(BN(conv7x7([max_c; mean_c])))`" in mlp_bn[4]
    conv_no_bn = explained("cbam", channel_mode="Conv", spatial_bn=False, spatial_kernel=3)
    assert conv_no_bn[3].endswith("`Mc = sigmoid(conv1d_k(avgpool x) + conv1d_k(maxpool x))`")
    assert "1-D convolution across channels" in conv_no_bn[3]
    assert "3x3 conv -> sigmoid" in conv_no_bn[4]
    assert "`Ms = sigmoid(conv3x3([max_c; mean_c]))`" in conv_no_bn[4]
