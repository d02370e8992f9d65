"""A user's file of a timm SE/ECA ResNet loads through pretrained.load, as timm computes it."""
import pathlib

import pytest
import timm
import torch

import pretrained
from blocks import capture_attention
from pretrained import CheckpointError
from pretrained.imagenet import IMAGENET_MODELS
from pretrained.timm_models import candidates, identify

LISTED = sorted({name.split(".")[0] for name in IMAGENET_MODELS})   # the app's timm models
LOADED_FOR_REAL = [   # one per layout; every other timm SE/ECA ResNet is recognised on meta below
    "legacy_seresnet18",                        # SENet layout: layer0, se_module, last_linear
    "seresnet18", "seresnet34",                 # SE width rounded to a multiple of 8 per stage
    "seresnet50",                               # fits our attention_resnet
    "ecaresnet26t", "ecaresnet50d",             # tiered / deep stem, avg-down shortcut
    "ecaresnetlight",                           # blocks per stage (1, 1, 11, 3)
]


def saved_timm_model(name: str, tmp_path: pathlib.Path, **kwargs) -> tuple[torch.nn.Module, pathlib.Path]:
    """A seeded timm model in eval mode, and the path of its saved state dict."""
    torch.manual_seed(0)
    model = timm.create_model(name, pretrained=False, **kwargs).eval()
    path = tmp_path / f"{name}.pth"
    torch.save(model.state_dict(), path)
    return model, path


def residual_blocks(model: torch.nn.Module) -> int:
    return sum(len(getattr(model, f"layer{stage}")) for stage in range(1, 5))


@pytest.mark.slow
@pytest.mark.parametrize("name", LOADED_FOR_REAL)
def test_timm_file_loads_and_matches_timm(name, tmp_path):
    theirs, path = saved_timm_model(name, tmp_path)
    loaded = pretrained.load(path)
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = theirs(x)
    cap = capture_attention(loaded.model, x)
    assert (cap.logits - expected).abs().max().item() <= 1e-4
    assert len(cap.layers) == residual_blocks(theirs)           # one attention block per residual block
    assert cap.layers[0].name == "layer1.0" and loaded.labels[0] == "tench"
    architecture, layout = (("SE ResNet-50", "timm ResNet") if name == "seresnet50"    # fits ours
                            else (f"timm {name}", "timm"))
    assert loaded.description == f"{architecture} from {name}.pth ({layout} layout, 1000 classes)"


@pytest.mark.slow
def test_fine_tuned_timm_head(tmp_path):
    theirs, path = saved_timm_model("legacy_seresnet18", tmp_path, num_classes=5)
    loaded = pretrained.load(path.read_bytes())
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert torch.equal(loaded.model(x), theirs(x))
    assert loaded.labels == tuple(f"class {i}" for i in range(5))
    assert loaded.description == "timm legacy_seresnet18 from uploaded file (timm layout, 5 classes)"


@pytest.mark.slow
def test_every_candidate_is_recognised_from_its_names_and_shapes():
    names = candidates()
    assert set(LISTED + LOADED_FOR_REAL) <= set(names) and len(names) >= 20
    for name in names:
        with torch.device("meta"):                     # 7 classes: the file's head, not timm's default
            state_dict = timm.create_model(name, pretrained=False, num_classes=7).state_dict()
        assert identify(state_dict) == (name, 7)       # the first exact match is the model itself


@pytest.mark.slow
def test_near_miss_names_the_closest_model(tmp_path):
    _, path = saved_timm_model("seresnet18", tmp_path)
    state_dict = torch.load(path, weights_only=True)
    del state_dict["layer2.0.se.fc1.weight"]
    state_dict["layer3.1.se.fc2.bias"] = torch.zeros(3)
    torch.save(state_dict, path)
    with pytest.raises(CheckpointError) as err:
        pretrained.load(path)
    assert str(err.value) == (
        "the weights fit neither an Attention Lens ResNet nor any of timm's SE/ECA ResNets; the "
        "closest, timm's seresnet18, differs by 1 missing key (layer2.0.se.fc1.weight); "
        "1 shape mismatch (layer3.1.se.fc2.bias: file [3] vs model [256])")


@pytest.mark.slow
def test_resnet_without_attention_is_told_what_is_missing(tmp_path):
    _, path = saved_timm_model("resnet50d", tmp_path)          # ecaresnet50d without its ECA
    with pytest.raises(CheckpointError) as err:
        pretrained.load(path)
    assert str(err.value) == (
        "the weights fit neither an Attention Lens ResNet nor any of timm's SE/ECA ResNets; the "
        "closest, timm's ecaresnet50d, differs by 16 missing keys (layer1.0.se.conv.weight, "
        "layer1.1.se.conv.weight, layer1.2.se.conv.weight, layer2.0.se.conv.weight, "
        "layer2.1.se.conv.weight, ... 11 more)")


@pytest.mark.slow
def test_fifty_class_counts_are_cheap_and_grow_no_cache():
    """A file's class count is the user's: each new one must cost arithmetic, not a model build."""
    import time
    from pretrained import timm_models
    base = {k: torch.zeros(s) for k, s in timm_models.expected_shapes("legacy_seresnet18", 1000).items()}
    identify(base)                                              # the architectures' shapes, once
    before = timm_models._shapes.cache_info().currsize
    for classes in range(2, 52):
        state = dict(base, **{"last_linear.weight": torch.zeros(classes, 512), "last_linear.bias": torch.zeros(classes)})
        start = time.perf_counter()
        assert identify(state) == ("legacy_seresnet18", classes)
        assert time.perf_counter() - start < 0.5
    assert timm_models._shapes.cache_info().currsize == before <= timm_models._shapes.cache_info().maxsize
