"""capture_attention: every block's gates in forward order, on our models and timm's; thread-safe;
leaves the model exactly as it found it."""

import pytest
import timm
import torch
from torch import nn

from blocks import Intervention, SEBlock, attention_resnet, capture_attention, strongest_channels
from conftest import in_threads


def gate_hooks(model):
    """An independent reading of every gate through plain hooks, for comparison."""
    seen = []
    handles = [m.register_forward_hook(lambda m, i, o, n=n: seen.append((n, o.clone())))
               for n, m in model.named_modules() if n.endswith(("gate", "se_module.sigmoid"))]
    return seen, handles


def test_records_in_forward_order(tiny_model, kind):
    cap = capture_attention(tiny_model, torch.randn(2, 3, 64, 64))
    assert [r.name for r in cap.layers] == [f"layer{s}.{b}" for s in (1, 2, 3, 4) for b in (0, 1)]
    assert [(r.stage, r.block) for r in cap.layers] == [(s, b) for s in (1, 2, 3, 4) for b in (0, 1)]
    assert {r.kind for r in cap.layers} == {kind}
    assert [r.feature_size for r in cap.layers] == [(16, 16)] * 2 + [(8, 8)] * 2 + [(4, 4)] * 2 + [(2, 2)] * 2
    assert [r.channels for r in cap.layers] == [8, 8, 16, 16, 32, 32, 64, 64]
    assert cap.logits.shape == (2, 10) and cap.input_size == (64, 64)
    for r in cap.layers:
        assert r.module == r.name + ".attn"
        assert 0 <= r.channel.min() and r.channel.max() <= 1
        assert (r.spatial is not None) == (kind == "cbam")
        if r.spatial is not None:
            assert r.spatial.shape == (2, *r.feature_size) and 0 <= r.spatial.min() and r.spatial.max() <= 1


def test_values_equal_plain_hooks_and_logits(tiny_model, kind):
    x = torch.randn(2, 3, 64, 64)
    seen, handles = gate_hooks(tiny_model)
    with torch.no_grad():
        logits = tiny_model(x)
    for h in handles:
        h.remove()
    cap = capture_attention(tiny_model, x)
    torch.testing.assert_close(cap.logits, logits)
    channel = [o for n, o in seen if not n.endswith("spatial.gate")]
    spatial = [o for n, o in seen if n.endswith("spatial.gate")]
    for r, c in zip(cap.layers, channel, strict=True):
        torch.testing.assert_close(r.channel, c.reshape(2, -1))
    if kind == "cbam":
        for r, s in zip(cap.layers, spatial, strict=True):
            torch.testing.assert_close(r.spatial, s[:, 0])


def test_top_maps_are_the_attended_output_of_the_highest_weighted_channels(tiny_model):
    block = tiny_model.layer3[1]
    out = {}
    handle = block.attn.register_forward_hook(lambda m, i, o: out.update(y=o.clone()))
    cap = capture_attention(tiny_model, torch.randn(2, 3, 64, 64), channel_maps=5)
    handle.remove()
    r = cap.layer("layer3.1")
    assert r.top_channels.shape == (2, 5) and r.top_maps.shape == (2, 5, 4, 4)
    for b in range(2):                                  # each image keeps its own top channels
        order = r.channel[b].argsort(descending=True, stable=True)
        assert torch.equal(r.top_channels[b], order[:5])
        torch.testing.assert_close(r.top_maps[b], out["y"][b, order[:5]])
        torch.testing.assert_close(r.activity(3)[b], out["y"][b, order[:3]].clamp(min=0).mean(0))
    assert cap.layer("layer4.1").top_maps.shape == (2, 5, 2, 2)
    # more maps than channels: all of them, in weight order
    assert capture_attention(tiny_model, torch.randn(1, 3, 64, 64), channel_maps=100).layers[0].top_maps.shape[1] == 8


def test_channel_maps_are_kept_only_on_request(tiny_model):
    r = capture_attention(tiny_model, torch.randn(1, 3, 64, 64)).layers[0]
    assert r.top_channels is None and r.top_maps is None and r.feature_size == (16, 16)
    with pytest.raises(ValueError, match=r"kept no channel maps: call capture_attention\(model, x, channel_maps=K\)"):
        r.activity(3)
    for bad in (-1, 2.5, "8"):
        with pytest.raises(ValueError, match="channel_maps must be a whole number >= 0, got"):
            capture_attention(tiny_model, torch.randn(1, 3, 64, 64), channel_maps=bad)


@pytest.mark.parametrize("name,kwargs,kind,count", [
    ("seresnet18", {}, "se", 8),
    ("legacy_seresnet18", {}, "se", 8),
    ("ecaresnet26t", {}, "eca", 8),
    ("resnet18", {"block_args": dict(attn_layer="cbam")}, "cbam", 8),
])
def test_timm_models(name, kwargs, kind, count):
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, num_classes=5, **kwargs).eval()
    x = torch.randn(1, 3, 64, 64)
    cap = capture_attention(model, x)
    assert len(cap.layers) == count and {r.kind for r in cap.layers} == {kind}
    assert cap.layers[0].name == "layer1.0" and cap.layers[-1].name == "layer4.1"
    assert all(0 <= r.channel.min() and r.channel.max() <= 1 for r in cap.layers)
    assert all((r.spatial is not None) == (kind == "cbam") for r in cap.layers)
    with torch.no_grad():
        torch.testing.assert_close(cap.logits, model(x))


def test_model_without_attention_is_refused():
    with pytest.raises(ValueError, match="AttentionResNet has no SE, ECA or CBAM attention blocks to capture"):
        capture_attention(attention_resnet(18, None, width=8), torch.randn(1, 3, 32, 32))


def test_model_without_attention_on_request():
    model = attention_resnet(18, None, num_classes=3, width=8).eval()
    x = torch.randn(1, 3, 32, 32)
    cap = capture_attention(model, x, require_attention=False)
    assert cap.layers == []
    with torch.no_grad():
        torch.testing.assert_close(cap.logits, model(x))


def test_bad_input_is_refused(tiny_model):
    with pytest.raises(ValueError, match=r"x must be a \[B, 3, H, W\] tensor with B >= 1, got \(3, 32, 32\)"):
        capture_attention(tiny_model, torch.randn(3, 32, 32))


def all_hooks(model):
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def test_leaves_nothing_behind_after_success(tiny_model):
    tiny_model.layer2.train()
    tiny_model.layer1[0].conv1.weight.requires_grad_(False)
    training = {n: m.training for n, m in tiny_model.named_modules()}
    grads = {n: p.requires_grad for n, p in tiny_model.named_parameters()}
    capture_attention(tiny_model, torch.randn(1, 3, 32, 32))
    assert all_hooks(tiny_model) == 0
    assert {n: m.training for n, m in tiny_model.named_modules()} == training
    assert {n: p.requires_grad for n, p in tiny_model.named_parameters()} == grads


def test_leaves_nothing_behind_after_an_exception_inside_forward(tiny_model):
    def boom(x):
        raise RuntimeError("boom in layer3")
    tiny_model.layer3.forward = boom
    with pytest.raises(RuntimeError, match="boom in layer3"):
        capture_attention(tiny_model, torch.randn(1, 3, 32, 32))
    assert all_hooks(tiny_model) == 0


@pytest.mark.slow
def test_concurrent_captures_on_one_shared_model_never_mix(tiny_model):
    """8 threads x 25 captures with different images: every result equals the serial one."""
    images = [torch.randn(1, 3, 48, 48, generator=torch.Generator().manual_seed(i)) for i in range(8)]
    serial = [capture_attention(tiny_model, x, channel_maps=4) for x in images]
    failures = []

    def worker(i):
        for _ in range(25):
            cap = capture_attention(tiny_model, images[i], channel_maps=4)
            same = torch.equal(cap.logits, serial[i].logits) and all(
                torch.equal(a.channel, b.channel) and torch.equal(a.top_maps, b.top_maps)
                and (a.spatial is None or torch.equal(a.spatial, b.spatial))
                for a, b in zip(cap.layers, serial[i].layers, strict=True))
            if not same:
                failures.append(i)

    in_threads(worker)
    assert failures == []
    assert all_hooks(tiny_model) == 0


def copy_of(model):
    clone = type(model)(18, model.attention, 10, 8, model.options)
    clone.load_state_dict(model.state_dict())
    return clone.eval()


def test_gate_off_intervention_equals_removing_the_attention(tiny_model):
    x = torch.randn(2, 3, 48, 48)
    edited = capture_attention(tiny_model, x, Intervention("layer2.1", "gate_off"))
    original = capture_attention(tiny_model, x)
    reference = copy_of(tiny_model)
    reference.layer2[1].attn = nn.Identity()
    with torch.no_grad():
        torch.testing.assert_close(edited.logits, reference(x))
    assert not torch.equal(edited.logits, original.logits)
    torch.testing.assert_close(edited.layer("layer2.1").channel, original.layer("layer2.1").channel)
    assert all_hooks(tiny_model) == 0


@pytest.mark.parametrize("kind", ["cbam"])
@pytest.mark.parametrize("mode, removed", [("channel_gate_off", "channel"), ("spatial_gate_off", "spatial")])
def test_one_cbam_gate_off_equals_removing_that_gate(tiny_model, mode, removed):
    x = torch.randn(2, 3, 48, 48)
    edited = capture_attention(tiny_model, x, Intervention("layer2.1", mode))
    reference = copy_of(tiny_model)
    setattr(reference.layer2[1].attn, removed, nn.Identity())        # the other gate still acts
    with torch.no_grad():
        torch.testing.assert_close(edited.logits, reference(x))
        assert not torch.allclose(edited.logits, tiny_model(x))
    assert all_hooks(tiny_model) == 0


@pytest.mark.parametrize("kind", ["se", "eca"])
def test_se_and_eca_have_no_spatial_gate_to_switch_off(tiny_model, kind):
    x = torch.randn(1, 3, 48, 48)
    with pytest.raises(ValueError, match=f"layer3.0 is {kind.upper()}: it has no spatial gate to switch off; "
                                         "use 'gate_off' or 'zero_top_k'"):
        capture_attention(tiny_model, x, Intervention("layer3.0", "spatial_gate_off"))
    torch.testing.assert_close(capture_attention(tiny_model, x, Intervention("layer3.0", "channel_gate_off")).logits,
                               capture_attention(tiny_model, x, Intervention("layer3.0", "gate_off")).logits)
    assert all_hooks(tiny_model) == 0


class ChannelMask(nn.Module):
    def __init__(self, keep):
        super().__init__()
        self.keep = keep

    def forward(self, y):
        return y * self.keep[None, :, None, None]


def test_zero_top_k_intervention_equals_masking_those_channels(tiny_model):
    x = torch.randn(1, 3, 48, 48)
    original = capture_attention(tiny_model, x)
    edited = capture_attention(tiny_model, x, Intervention("layer3.0", "zero_top_k", k=3))
    top = original.layer("layer3.0").channel[0].topk(3).indices
    reference = copy_of(tiny_model)
    keep = torch.ones(32).index_fill_(0, top, 0)
    reference.layer3[0].attn = nn.Sequential(reference.layer3[0].attn, ChannelMask(keep))
    with torch.no_grad():
        torch.testing.assert_close(edited.logits, reference(x))
    assert torch.equal(edited.layer("layer3.0").channel[0].topk(3).indices, top)   # records stay unedited
    assert all_hooks(tiny_model) == 0


def test_bad_interventions(tiny_model):
    x = torch.randn(1, 3, 48, 48)
    with pytest.raises(ValueError, match="no attention block named 'layer9.0'; blocks: layer1.0, layer1.1"):
        capture_attention(tiny_model, x, Intervention("layer9.0"))
    with pytest.raises(ValueError, match="unknown intervention 'scramble'; choose one of 'gate_off', 'channel_gate_off', "
                                         "'spatial_gate_off', 'zero_top_k'"):
        capture_attention(tiny_model, x, Intervention("layer3.0", "scramble"))
    assert all_hooks(tiny_model) == 0


@pytest.mark.parametrize("k", [-1, 0, None, 2.5, True])
def test_intervention_k_must_be_a_whole_number(k):
    with pytest.raises(ValueError, match=f"k must be a whole number >= 1, got {k!r}"):
        Intervention("layer2.1", "zero_top_k", k)


def test_an_attention_module_that_never_runs_has_no_record():
    class WithSpare(nn.Module):
        def __init__(self):
            super().__init__()
            self.used, self.spare = SEBlock("avg", 8, 2), SEBlock("avg", 8, 2)
            self.conv = nn.Conv2d(3, 8, 3)

        def forward(self, x):
            return self.used(self.conv(x)).mean((2, 3))
    capture = capture_attention(WithSpare().eval(), torch.randn(1, 3, 8, 8))
    assert [r.module for r in capture.layers] == ["used"]


def test_an_empty_batch_is_refused(tiny_model):
    with pytest.raises(ValueError, match=r"x must be a \[B, 3, H, W\] tensor with B >= 1, got \(0, 3, 32, 32\)"):
        capture_attention(tiny_model, torch.randn(0, 3, 32, 32))


def test_activity_needs_k_of_at_least_one(tiny_model):
    record = capture_attention(tiny_model, torch.randn(1, 3, 32, 32), channel_maps=4).layers[0]
    torch.testing.assert_close(record.activity(100), record.activity(4))    # all the maps kept
    for k in (0, -5, 1.5):
        with pytest.raises(ValueError, match=f"k must be a whole number >= 1, got {k!r}"):
            record.activity(k)


def test_a_module_reused_in_two_places_is_one_site():
    torch.manual_seed(0)
    se = SEBlock("avg", 8, 2)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), se, nn.Sequential(nn.ReLU(), se), nn.Flatten(), nn.LazyLinear(2))
    model(torch.randn(1, 3, 8, 8))
    cap = capture_attention(model, torch.randn(1, 3, 8, 8))
    assert [r.module for r in cap.layers] == ["1"]


def test_strongest_channels_break_ties_towards_the_lower_index_like_the_charts():
    weights = torch.tensor([[1.0, 0.5, 1.0, 1.0, 0.9], [0.1, 0.2, 0.3, 0.2, 0.0]])
    assert strongest_channels(weights, 3).tolist() == [[0, 2, 3], [2, 1, 3]]
    assert strongest_channels(weights, 9).shape == (2, 5)
