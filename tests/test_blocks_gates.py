"""Every block exposes its attention through `gate` submodules that a forward hook can read."""
import torch

from blocks import CBAMBlock, ECABlock, SEBlock

from conftest import randomize_batchnorm


def gate_outputs(block, x):
    seen = {}
    handles = [m.register_forward_hook(lambda m, i, o, name=name: seen.__setitem__(name, o))
               for name, m in block.named_modules() if name.endswith("gate")]
    try:
        with torch.no_grad():
            y = block(x)
    finally:
        for h in handles:
            h.remove()
    return y, seen


def test_se_and_eca_gate_is_channel_weights():
    x = torch.randn(3, 64, 9, 11)
    for block in (SEBlock("avg", 64, 4), SEBlock("max", 64, 4), ECABlock(64)):
        y, seen = gate_outputs(block, x)
        (w,) = seen.values()
        assert w.shape == (3, 64) and 0 <= w.min() and w.max() <= 1
        torch.testing.assert_close(y, x * w[:, :, None, None])


def test_cbam_gates_are_channel_weights_and_spatial_map():
    x = torch.randn(3, 64, 9, 11)
    for block in (CBAMBlock("FC", 7, channels=64, ratio=4), CBAMBlock("Conv", 3, channels=64)):
        block = randomize_batchnorm(block).eval()
        y, seen = gate_outputs(block, x)
        c, s = seen["channel.gate"], seen["spatial.gate"]
        assert c.shape == (3, 64) and s.shape == (3, 1, 9, 11)
        for g in (c, s):
            assert 0 <= g.min() and g.max() <= 1
        assert s.std() > 0                          # a real map, not a constant
        torch.testing.assert_close(y, x * c[:, :, None, None] * s)


def test_spatial_gate_responds_where_the_features_are():
    """A bright square in a feature map gets the highest spatial weight under an all-positive
    kernel on the max/mean descriptors (no BN), so the map's peak lies inside the square."""
    block = CBAMBlock("FC", 3, channels=8, ratio=2, spatial_bn=False)
    with torch.no_grad():
        block.spatial.conv.weight.fill_(0.1)
    x = torch.zeros(1, 8, 20, 20)
    x[:, :, 12:16, 3:7] = 0.5
    _, seen = gate_outputs(block, x)
    peak = divmod(int(seen["spatial.gate"][0, 0].argmax()), 20)
    assert 12 <= peak[0] < 16 and 3 <= peak[1] < 7
