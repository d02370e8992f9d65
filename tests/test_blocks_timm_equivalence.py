"""With weights copied over, our blocks and ResNet-50s compute exactly what timm's do."""
import pytest
import torch
from timm.layers.cbam import CbamModule
from timm.layers.eca import EcaModule
from timm.layers.squeeze_excite import SEModule
from timm.models.resnet import Bottleneck as TimmBottleneck
from timm.models.resnet import ResNet as TimmResNet

from blocks import CBAMBlock, ECABlock, SEBlock, attention_resnet
from pretrained import convert_timm_state_dict

from conftest import randomize_batchnorm

TOL = dict(atol=1e-4, rtol=0)


def copy_block(theirs, ours):
    """Load a timm attention module's weights into ours via the same converter the models use."""
    prefixed = {f"layer1.0.se.{k}": v for k, v in theirs.state_dict().items()}
    converted = convert_timm_state_dict(prefixed)
    ours.load_state_dict({k.removeprefix("layer1.0.attn."): v for k, v in converted.items()})
    return ours


def test_se_module():
    torch.manual_seed(0)
    theirs = SEModule(256, rd_ratio=1 / 16).eval()
    ours = copy_block(theirs, SEBlock("avg", 256, 16)).eval()
    x = torch.randn(4, 256, 14, 14)
    torch.testing.assert_close(ours(x), theirs(x), **TOL)


@pytest.mark.parametrize("channels", [64, 256, 2048])
def test_eca_module(channels):
    torch.manual_seed(0)
    theirs = EcaModule(channels).eval()
    ours = copy_block(theirs, ECABlock(channels)).eval()
    assert ours.conv.kernel_size == theirs.conv.kernel_size
    x = torch.randn(4, channels, 7, 7)
    torch.testing.assert_close(ours(x), theirs(x), **TOL)


@pytest.mark.parametrize("mlp_bias", [False, True])
def test_cbam_module(mlp_bias):
    torch.manual_seed(0)
    theirs = randomize_batchnorm(CbamModule(256, rd_ratio=1 / 16, mlp_bias=mlp_bias)).eval()
    ours = copy_block(theirs, CBAMBlock("FC", 7, channels=256, ratio=16, bias=mlp_bias)).eval()
    x = torch.randn(4, 256, 14, 14)
    torch.testing.assert_close(ours(x), theirs(x), **TOL)


@pytest.mark.parametrize("attention,options", [
    ("se", {}),
    ("eca", {}),
    ("cbam", {"bias": False}),                     # timm's CbamModule has no MLP bias
])
@pytest.mark.slow
def test_resnet50_logits(attention, options):
    torch.manual_seed(0)
    theirs = TimmResNet(TimmBottleneck, (3, 4, 6, 3), block_args=dict(attn_layer=attention))
    theirs = randomize_batchnorm(theirs).eval()
    ours = attention_resnet(50, attention, **options).eval()
    ours.load_state_dict(convert_timm_state_dict(theirs.state_dict()), strict=True)
    x = torch.randn(2, 3, 160, 160)
    with torch.no_grad():
        a, b = ours(x), theirs(x)
    assert a.abs().max() > 1e-2                    # not a degenerate all-zero comparison
    torch.testing.assert_close(a, b, **TOL)
