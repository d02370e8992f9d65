"""attention_resnet: the papers' parameter counts, torchvision's names, attention before the add."""
import pytest
import torch
import torchvision

from blocks import attention_resnet, eca_kernel_size



def n_params(model):
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("attention,options,expected", [
    (None, {}, 25_557_032),                          # torchvision resnet50
    ("se", {}, 28_088_024),                          # SE paper r=16 with biases = timm seresnet50
    ("cbam", {}, 28_089_624),                        # + 16 x (7x7x2 conv + BN affine)
    ("eca", {"k_size": (3, 5, 5, 7)}, 25_557_032 + 80),  # ECA paper: "80 vs. 24.37M"
])
def test_resnet50_parameter_count(attention, options, expected):
    assert n_params(attention_resnet(50, attention, **options)) == expected


def test_adaptive_eca_resnet50_kernels():
    model = attention_resnet(50, "eca")
    kernels = [m.attn.conv.kernel_size[0] for layer in (model.layer1, model.layer4) for m in layer[:1]]
    assert kernels == [5, 7]                          # C=256 -> 5, C=2048 -> 7


@pytest.mark.parametrize("channels,k", [(54, 3), (64, 3), (128, 5), (256, 5), (512, 5), (1024, 5), (2048, 7)])
def test_eca_kernel_formula(channels, k):
    assert eca_kernel_size(channels, gamma=2, b=1) == k


@pytest.mark.slow
@pytest.mark.parametrize("depth", [18, 34, 50, 101, 152])
def test_plain_layout_equals_torchvision(depth):
    ours = attention_resnet(depth).state_dict()
    theirs = getattr(torchvision.models, f"resnet{depth}")().state_dict()
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in theirs.items()}


@pytest.mark.slow
@pytest.mark.parametrize("depth", [18, 50])
def test_plain_model_reproduces_torchvision_logits(depth):
    torch.manual_seed(0)
    theirs = getattr(torchvision.models, f"resnet{depth}")().eval()
    ours = attention_resnet(depth).eval()
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(2, 3, 96, 96)
    torch.testing.assert_close(ours(x), theirs(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("depth,blocks", [(18, 8), (34, 16), (50, 16), (101, 33), (152, 50)])
def test_one_attention_module_per_residual_block(depth, blocks, kind):
    model = attention_resnet(depth, kind, width=8, ratio=2)
    assert sum(type(m).__name__ == {"se": "SEBlock", "eca": "ECABlock", "cbam": "CBAMBlock"}[kind]
               for m in model.modules()) == blocks


def test_attention_sits_after_last_bn_before_add(tiny_model):
    """attn's input is the last BN's output, and the block returns relu(attn(...) + shortcut)."""
    seen = {}
    block = tiny_model.layer2[0]                      # has a downsample shortcut
    hooks = [block.bn2.register_forward_hook(lambda m, i, o: seen.update(bn=o)),
             block.attn.register_forward_hook(lambda m, i, o: seen.update(attn_in=i[0], attn_out=o.clone())),
             block.downsample.register_forward_hook(lambda m, i, o: seen.update(short=o)),
             block.register_forward_hook(lambda m, i, o: seen.update(out=o))]
    with torch.no_grad():
        tiny_model(torch.randn(2, 3, 64, 64))
    for h in hooks:
        h.remove()
    assert seen["attn_in"] is seen["bn"]
    torch.testing.assert_close(seen["out"], torch.relu(seen["attn_out"] + seen["short"]))


@pytest.mark.parametrize("size", [(1, 1), (33, 47), (224, 224), (97, 300)])
def test_any_input_size(tiny_model, size):
    with torch.no_grad():
        assert tiny_model(torch.randn(1, 3, *size)).shape == (1, 10)


def test_width_scales_every_stage():
    model = attention_resnet(50, "cbam", num_classes=7, width=16)
    assert model.conv1.out_channels == 16
    assert [getattr(model, f"layer{s}")[0].conv3.out_channels for s in (1, 2, 3, 4)] == [64, 128, 256, 512]
    assert model.fc.weight.shape == (7, 512)


def test_per_stage_eca_kernels():
    model = attention_resnet(50, "eca", k_size=(3, 5, 5, 7))
    assert [getattr(model, f"layer{s}")[-1].attn.conv.kernel_size[0] for s in (1, 2, 3, 4)] == [3, 5, 5, 7]


def test_zero_init_residual_makes_blocks_start_as_identity_branches():
    model = attention_resnet(50, "se", zero_init_residual=True)
    assert all(int(torch.count_nonzero(b.bn3.weight)) == 0 for b in model.layer1)


def test_in_place_scaling_matches_autograd_path(tiny_model):
    """Outside autograd the blocks scale in place; with gradients they allocate. Same numbers."""
    x = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        fast = tiny_model(x)
    slow = tiny_model(x.requires_grad_())
    torch.testing.assert_close(fast, slow.detach())
    slow.sum().backward()
    assert x.grad.abs().sum() > 0


def test_trains_in_train_mode(tiny_model):
    tiny_model.train()
    out = tiny_model(torch.randn(4, 3, 48, 48))
    torch.nn.functional.cross_entropy(out, torch.tensor([0, 1, 2, 3])).backward()
    grads = [p.grad for n, p in tiny_model.named_parameters() if ".attn." in n]
    assert grads and all(g is not None for g in grads)
    # a 2-unit hidden layer may have a dead ReLU in a tiny model; the rest must learn
    assert sum(bool(g.abs().sum() > 0) for g in grads) >= 0.8 * len(grads)


@pytest.mark.parametrize("attention,parameters", [(None, 703_386), ("cbam", 726_546)])
def test_a_stem_without_its_max_pool_has_the_same_weights_and_twice_the_resolution(attention, parameters):
    """stem_pool=False drops the parameter-free 3x3/2 max-pool: the names and shapes are torchvision's
    as before (nothing in a file says which stem it had), every stage sees twice the resolution."""
    pooled, unpooled = (attention_resnet(18, attention, num_classes=10, width=16, ratio=4, stem_pool=p)
                        for p in (True, False))
    assert n_params(unpooled) == n_params(pooled) == parameters
    shapes = [{k: v.shape for k, v in model.state_dict().items()} for model in (pooled, unpooled)]
    assert shapes[0] == shapes[1]
    x = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        assert pooled.forward_features(x).shape == (1, 128, 4, 4)
        assert unpooled.forward_features(x).shape == (1, 128, 8, 8)
        assert unpooled(x).shape == (1, 10)
    assert [f["reduction"] for f in pooled.feature_info] == [2, 4, 8, 16, 32]
    assert [f["reduction"] for f in unpooled.feature_info] == [2, 2, 4, 8, 16]
    assert (pooled.stem_pool, unpooled.stem_pool) == (True, False)
