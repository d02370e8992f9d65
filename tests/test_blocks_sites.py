"""Attention sites come from what a model declares (`feature_info`), never from its module names."""
import timm
import torch
from torch import nn

from blocks import SEBlock, attention_resnet, attention_sites, capture_attention


def test_our_resnet_declares_stage_block_channels_and_stride():
    sites = attention_sites(attention_resnet(50, "cbam"))
    assert [(s.name, s.stage, s.block) for s in sites][:4] == [
        ("layer1.0", 1, 0), ("layer1.1", 1, 1), ("layer1.2", 1, 2), ("layer2.0", 2, 0)]
    assert len(sites) == 16 and sites[-1].name == "layer4.2" and sites[-1].module_name == "layer4.2.attn"
    assert {(s.stage, s.channels, s.reduction) for s in sites} == {(1, 256, 4), (2, 512, 8), (3, 1024, 16),
                                                                   (4, 2048, 32)}


def test_timm_models_declare_theirs():
    with torch.device("meta"):
        legacy = timm.create_model("legacy_seresnet18")
        light = timm.create_model("ecaresnetlight")
    assert [(s.name, s.stage, s.block, s.channels) for s in attention_sites(legacy)][:3] == [
        ("layer1.0", 1, 0, 64), ("layer1.1", 1, 1, 64), ("layer2.0", 2, 0, 128)]
    counts = [sum(s.stage == stage for s in attention_sites(light)) for stage in (1, 2, 3, 4)]
    assert counts == [1, 1, 11, 3] and attention_sites(light)[-1].module_name == "layer4.2.se"


class Renamed(nn.Module):
    """Stages under names no regex knows, declared in feature_info."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.early = nn.Sequential(nn.Sequential(SEBlock("avg", 4, 2)), nn.Sequential(nn.ReLU(), SEBlock("avg", 4, 2)))
        self.late = nn.Sequential(nn.Conv2d(4, 8, 3, stride=2, padding=1), nn.Sequential(SEBlock("avg", 8, 2)))
        self.feature_info = [dict(module="stem", num_chs=4, reduction=1), dict(module="early", num_chs=4, reduction=1),
                             dict(module="late", num_chs=8, reduction=2)]

    def forward(self, x):
        return self.late(self.early(self.stem(x))).mean((2, 3))


def test_stages_come_from_the_declaration_not_the_names():
    model = Renamed().eval()
    cap = capture_attention(model, torch.rand(1, 3, 8, 8))
    assert [(r.name, r.module, r.stage, r.block) for r in cap.layers] == [
        ("early.0", "early.0.0", 1, 0), ("early.1", "early.1.1", 1, 1), ("late.1", "late.1.0", 2, 1)]
    assert [r.feature_size for r in cap.layers] == [(8, 8), (8, 8), (4, 4)]


def test_a_model_that_declares_nothing_still_has_its_sites_found():
    model = nn.Sequential(nn.Conv2d(3, 4, 1), SEBlock("avg", 4, 2), nn.Sequential(SEBlock("max", 4, 2)))
    sites = attention_sites(model)
    assert [(s.name, s.module_name, s.kind, s.stage, s.block, s.channels) for s in sites] == [
        ("1", "1", "se", None, None, None), ("2", "2.0", "se", None, None, None)]
