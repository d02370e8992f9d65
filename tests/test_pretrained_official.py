"""Official ECA-Net / CBAM checkpoints: synthetic files in the official key layout give the logits
of an independent reference forward (torchvision ResNet + the official modules' maths)."""
import pytest
import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torchvision.models import resnet

from blocks import attention_resnet
from pretrained.checkpoint import CheckpointError, read_state_dict, strip_shared_prefix
from pretrained.official import (build_official_model, convert_cbam_state_dict,
                                 convert_ecanet_state_dict, infer_resnet_depth)

from conftest import randomize_batchnorm

TOL = dict(atol=1e-4, rtol=0)
# our name -> the official repo's name, written out here independently of pretrained/official.py
TO_ECANET = {".attn.": ".eca."}
TO_CBAM = {
    ".attn.channel.fc1.": ".cbam.ChannelGate.mlp.1.",
    ".attn.channel.fc2.": ".cbam.ChannelGate.mlp.3.",
    ".attn.spatial.conv.": ".cbam.SpatialGate.spatial.conv.",
    ".attn.spatial.bn.": ".cbam.SpatialGate.spatial.bn.",
}


def official_checkpoint(model: nn.Module, renames: dict[str, str]) -> dict:
    """`model`'s weights as the official training scripts save them (DataParallel, wrapped)."""
    state_dict = {}
    for key, value in model.state_dict().items():
        for ours, theirs in renames.items():
            key = key.replace(ours, theirs)
        state_dict[f"module.{key}"] = value.clone()
    return {"epoch": 100, "arch": "resnet", "state_dict": state_dict, "best_prec1": 77.6,
            "optimizer": {"state": {}, "param_groups": [{"lr": 0.1, "params": [0, 1]}]}}


def save(checkpoint: dict, tmp_path) -> str:
    path = tmp_path / "model_best.pth.tar"
    torch.save(checkpoint, path)
    return path


class ReferenceECA(nn.Module):
    """eca_layer.forward of BangguWu/ECANet models/eca_module.py, on the file's tensor."""

    def __init__(self, weight: torch.Tensor):
        super().__init__()
        self.weight = weight                                               # [1, 1, k]

    def forward(self, x):
        k = self.weight.shape[-1]
        y = F.adaptive_avg_pool2d(x, 1)                                    # [B, C, 1, 1]
        y = F.conv1d(y.squeeze(-1).transpose(-1, -2), self.weight, padding=(k - 1) // 2)
        y = torch.sigmoid(y.transpose(-1, -2).unsqueeze(-1))               # [B, C, 1, 1]
        return x * y.expand_as(x)


class ReferenceCBAM(nn.Module):
    """CBAM.forward of Jongchan/attention-module MODELS/cbam.py, on the file's tensors."""

    def __init__(self, p: dict[str, torch.Tensor]):
        super().__init__()
        self.p = p

    def mlp(self, x):                                      # Sequential(Flatten, Linear, ReLU, Linear)
        p = self.p
        x = F.linear(x.view(x.size(0), -1), p["ChannelGate.mlp.1.weight"], p["ChannelGate.mlp.1.bias"])
        return F.linear(F.relu(x), p["ChannelGate.mlp.3.weight"], p["ChannelGate.mlp.3.bias"])

    def forward(self, x):
        h, w = x.shape[2:]
        att = (self.mlp(F.avg_pool2d(x, (h, w), stride=(h, w)))
               + self.mlp(F.max_pool2d(x, (h, w), stride=(h, w))))             # [B, C]
        x = x * torch.sigmoid(att).unsqueeze(2).unsqueeze(3).expand_as(x)
        pooled = torch.cat((torch.max(x, 1)[0].unsqueeze(1), torch.mean(x, 1).unsqueeze(1)), 1)
        bn = "SpatialGate.spatial.bn."
        s = F.conv2d(pooled, self.p["SpatialGate.spatial.conv.weight"], padding=3)
        s = F.batch_norm(s, self.p[bn + "running_mean"], self.p[bn + "running_var"],
                         self.p[bn + "weight"], self.p[bn + "bias"], training=False, eps=1e-5)
        return x * torch.sigmoid(s)                                            # [B, C, H, W]


def reference_model(checkpoint: dict, depth: int, module: str, make) -> nn.Module:
    """torchvision's ResNet with the file's weights and make(<the file's tensors of each block's
    `module`>) applied to the last BN's output, before the residual add."""
    sd = {k.removeprefix("module."): v for k, v in checkpoint["state_dict"].items()}
    model = getattr(torchvision.models, f"resnet{depth}")(num_classes=sd["fc.weight"].shape[0])
    model.load_state_dict({k: v for k, v in sd.items() if f".{module}." not in k})  # strict
    for name, block in model.named_modules():
        if isinstance(block, (resnet.BasicBlock, resnet.Bottleneck)):
            prefix = f"{name}.{module}."
            last = "bn3" if hasattr(block, "bn3") else "bn2"
            attention = make({k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)})
            setattr(block, last, nn.Sequential(getattr(block, last), attention))
    return model.eval()


def seeded(depth: int, attention: str, **options) -> nn.Module:
    torch.manual_seed(depth)
    return randomize_batchnorm(attention_resnet(depth, attention, **options), seed=depth)


@pytest.mark.parametrize("depth,k_size,num_classes", [(50, (3, 5, 5, 7), 1000),   # ECA-Net50
                                                     (18, (3, 5, 7, 7), 10)])    # ECA-Net18
@pytest.mark.slow
def test_ecanet_checkpoint_logits(depth, k_size, num_classes, tmp_path):
    checkpoint = official_checkpoint(seeded(depth, "eca", k_size=k_size, num_classes=num_classes),
                                     TO_ECANET)
    model, info = build_official_model(read_state_dict(save(checkpoint, tmp_path)))
    assert (info.layout, info.attention, info.depth, info.num_classes, info.options) == (
        "ECA-Net (BangguWu/ECANet)", "eca", depth, num_classes, {"k_size": k_size})
    assert not model.training
    reference = reference_model(checkpoint, depth, "eca", lambda p: ReferenceECA(p["conv.weight"]))
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = reference(x)
        torch.testing.assert_close(model(x), expected, **TOL)
    assert expected.abs().max() > 0.1                    # the comparison is not between zeros


@pytest.mark.slow
def test_cbam_checkpoint_logits(tmp_path):
    checkpoint = official_checkpoint(seeded(50, "cbam", num_classes=10), TO_CBAM)
    assert "module.layer4.2.cbam.SpatialGate.spatial.bn.num_batches_tracked" in checkpoint["state_dict"]
    model, info = build_official_model(read_state_dict(save(checkpoint, tmp_path)))
    assert (info.layout, info.attention, info.depth, info.num_classes, info.options) == (
        "CBAM (Jongchan/attention-module)", "cbam", 50, 10, {"ratio": 16})
    assert not model.training
    reference = reference_model(checkpoint, 50, "cbam", ReferenceCBAM)
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = reference(x)
        torch.testing.assert_close(model(x), expected, **TOL)
    assert expected.abs().max() > 0.1


def as_read(checkpoint: dict) -> dict:
    """The state dict as `read_checkpoint` hands it on: DataParallel's `module.` stripped once."""
    return strip_shared_prefix(checkpoint["state_dict"])


def test_convert_ecanet_reads_kernels_from_shapes():
    raw = as_read(official_checkpoint(seeded(34, "eca", k_size=(3, 3, 5, 7), width=8), TO_ECANET))
    converted, k_size = convert_ecanet_state_dict(raw)
    assert k_size == (3, 3, 5, 7)
    assert set(converted) == {k.replace(".eca.", ".attn.") for k in raw}
    assert converted["layer3.5.attn.conv.weight"] is raw["layer3.5.eca.conv.weight"]


def test_convert_ecanet_without_a_stage_kernel():
    raw = as_read(official_checkpoint(seeded(18, "eca", width=8), TO_ECANET))
    del raw["layer3.0.eca.conv.weight"]
    with pytest.raises(CheckpointError) as err:
        convert_ecanet_state_dict(raw)
    assert str(err.value) == ("no ECA kernel for stage 3: expected layer3.0.eca.conv.weight "
                              "of shape [1, 1, k]")


def test_convert_cbam_names():
    raw = as_read(official_checkpoint(seeded(18, "cbam", width=8, ratio=4), TO_CBAM))
    converted = convert_cbam_state_dict(raw)
    assert set(converted) == set(attention_resnet(18, "cbam", width=8, ratio=4).state_dict())
    assert converted["layer2.1.attn.channel.fc2.bias"] is raw["layer2.1.cbam.ChannelGate.mlp.3.bias"]
    assert converted["layer4.1.attn.spatial.conv.weight"] is raw["layer4.1.cbam.SpatialGate.spatial.conv.weight"]


@pytest.mark.parametrize("depth", [18, 34, 50, 101, 152])
def test_infer_resnet_depth(depth):
    raw = as_read(official_checkpoint(attention_resnet(depth, "eca", width=8), TO_ECANET))
    assert infer_resnet_depth(raw) == depth


def test_infer_resnet_depth_nonstandard():
    sd = {k: v for k, v in attention_resnet(50, width=8).state_dict().items()
          if not k.startswith("layer3.5.")}
    with pytest.raises(CheckpointError) as err:
        infer_resnet_depth(sd)
    assert str(err.value) == ("not a standard ResNet: Bottleneck blocks per stage (3, 4, 5, 3); "
                              "expected ResNet-18/34/50/101/152")


def test_unknown_layout():
    sd = torchvision.models.resnet18().state_dict()
    with pytest.raises(CheckpointError) as err:
        build_official_model(sd)
    assert str(err.value) == (
        "not an official ECA-Net or CBAM checkpoint: expected a key 'layer1.0.eca.conv.weight' for "
        "ECA-Net (BangguWu/ECANet) or 'layer1.0.cbam.ChannelGate.mlp.1.weight' for CBAM "
        "(Jongchan/attention-module); the file's keys start 'conv1.weight', 'bn1.weight', 'bn1.bias'")


def test_mismatched_official_file():
    small = seeded(18, "cbam", width=8, ratio=4)              # width 8: not an ImageNet ResNet-18
    full = attention_resnet(18, "cbam", ratio=4).state_dict().values()
    wrong = sum(a.shape != b.shape for a, b in zip(small.state_dict().values(), full))
    with pytest.raises(CheckpointError) as err:
        build_official_model(as_read(official_checkpoint(small, TO_CBAM)))
    assert str(err.value) == (
        f"the weights do not fit this model: {wrong} shape mismatches ("
        "conv1.weight: file [8, 3, 7, 7] vs model [64, 3, 7, 7], bn1.weight: file [8] vs model [64], "
        "bn1.bias: file [8] vs model [64], bn1.running_mean: file [8] vs model [64], "
        f"bn1.running_var: file [8] vs model [64], ... {wrong - 5} more)")


def test_loading_an_official_file_reads_it_once_and_strips_once(tmp_path, monkeypatch):
    import pretrained
    from pretrained import checkpoint
    calls = {"read": 0, "strip": 0}
    read, strip = checkpoint.read_checkpoint, checkpoint.strip_shared_prefix
    monkeypatch.setattr(checkpoint, "strip_shared_prefix",
                        lambda sd: calls.__setitem__("strip", calls["strip"] + 1) or strip(sd))
    monkeypatch.setattr(pretrained.registry, "read_isolated",      # in this process, to count the calls
                        lambda source: calls.__setitem__("read", calls["read"] + 1) or read(source))
    path = save(official_checkpoint(seeded(18, "eca", k_size=(3, 5, 7, 7)), TO_ECANET), tmp_path)
    loaded = pretrained.load(str(path))
    assert calls == {"read": 1, "strip": 1}
    assert loaded.description.endswith("(official ECA-Net (BangguWu/ECANet) layout, 1000 classes)")
