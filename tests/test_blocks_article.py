"""The seed article's block signatures work unchanged and compute what its code computes."""
import pytest
import torch
import torch.nn.functional as F

from blocks import CBAMBlock, ECABlock, SEBlock


@pytest.fixture
def x():
    return torch.randn(8, 54, 32, 32, generator=torch.Generator().manual_seed(1))


def reference_mlp(block, v):
    """The excitation MLP written out with the block's own weights (no nn.Module call)."""
    h = F.relu(F.linear(v, block.fc1.weight, block.fc1.bias))
    return F.linear(h, block.fc2.weight, block.fc2.bias)


def reference_conv1d(conv, v):
    k = conv.weight.shape[-1]
    return F.conv1d(v[:, None], conv.weight, padding=(k - 1) // 2)[:, 0]


@pytest.mark.parametrize("mode,pool", [("max", lambda t: t.amax((2, 3))), ("avg", lambda t: t.mean((2, 3)))])
def test_se_article_call(x, mode, pool):
    block = SEBlock(mode, 54, 9)
    assert block.fc1.weight.shape == (6, 54) and block.fc2.weight.shape == (54, 6)
    expected = x * torch.sigmoid(reference_mlp(block, pool(x)))[:, :, None, None]
    torch.testing.assert_close(block(x), expected)


def test_se_article_256_16():
    x = torch.randn(2, 256, 7, 7)
    block = SEBlock("avg", 256, 16)
    assert block.fc1.out_features == 16
    assert block(x).shape == x.shape


def test_se_without_bias_matches_article_layout():
    block = SEBlock("max", 54, 9, bias=False)
    assert [n for n, _ in block.named_parameters()] == ["fc1.weight", "fc2.weight"]


def test_eca_article_call(x):
    block = ECABlock(54, gamma=2, b=1)
    assert block.conv.weight.shape == (1, 1, 3) and block.conv.bias is None
    expected = x * torch.sigmoid(reference_conv1d(block.conv, x.mean((2, 3))))[:, :, None, None]
    torch.testing.assert_close(block(x), expected)


def reference_spatial(block, y):
    pooled = torch.cat((y.amax(1, keepdim=True), y.mean(1, keepdim=True)), 1)
    k = block.conv.weight.shape[-1]
    z = F.conv2d(pooled, block.conv.weight, padding=(k - 1) // 2)
    bn = block.bn
    z = (z - bn.running_mean[0]) / torch.sqrt(bn.running_var[0] + bn.eps) * bn.weight[0] + bn.bias[0]
    return y * torch.sigmoid(z)


def test_cbam_fc_article_call(x):
    block = CBAMBlock("FC", 5, channels=54, ratio=9).eval()
    assert block.spatial.conv.weight.shape == (1, 2, 5, 5)
    ca = block.channel
    channel = torch.sigmoid(reference_mlp(ca, x.mean((2, 3))) + reference_mlp(ca, x.amax((2, 3))))
    expected = reference_spatial(block.spatial, x * channel[:, :, None, None])
    torch.testing.assert_close(block(x), expected)


def test_cbam_conv_article_call(x):
    block = CBAMBlock("Conv", 5, channels=54, gamma=2, b=1).eval()
    conv = block.channel.conv
    assert conv.weight.shape == (1, 1, 3)
    channel = torch.sigmoid(reference_conv1d(conv, x.mean((2, 3))) + reference_conv1d(conv, x.amax((2, 3))))
    expected = reference_spatial(block.spatial, x * channel[:, :, None, None])
    torch.testing.assert_close(block(x), expected)


def test_cbam_article_layout_without_bias_and_bn(x):
    block = CBAMBlock("FC", 7, channels=54, ratio=9, bias=False, spatial_bn=False)
    names = [n for n, _ in block.named_parameters()]
    assert names == ["channel.fc1.weight", "channel.fc2.weight", "spatial.conv.weight"]
    assert block(x).shape == x.shape
