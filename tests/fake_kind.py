"""A fourth attention kind, for tests that show a new kind needs one record and one registry entry
(`blocks.sites.ATTENTION_MODULES`): the `fake_kind` fixture of conftest.py registers it for one test.

`ToyAttention` is a channel gate (a 1x1 conv over the average-pooled features, sigmoid) and
`ToyTwoGates` adds a spatial gate after it (a 3x3 conv over the channel mean, sigmoid), so one kind
asks the one-gate paths (SE, ECA) and the other the two-gate path (CBAM) under names nothing
else knows.
"""
from dataclasses import dataclass

import torch
from torch import nn

import pretrained
from blocks import AttentionKind, attention_resnet

ONE_GATE = AttentionKind("toy", "Toy", 3, "a test's own kind", "w = sigmoid(conv1x1(avgpool(x))), y = w * x", False)
TWO_GATES = AttentionKind("toy2", "Toy-2", 4, "a test's own kind",
                          "w = sigmoid(conv1x1(avgpool x)), x' = w * x; s = sigmoid(conv3x3(mean_c x')), y = s * x'", True)


class ToyAttention(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.fc = nn.Conv2d(channels, channels, 1)
        self.gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:     # x: [B, C, H, W]
        return x * self.gate(self.fc(x.mean((2, 3), keepdim=True)))


class ToyTwoGates(ToyAttention):
    def __init__(self, channels: int):
        super().__init__(channels)
        self.conv = nn.Conv2d(1, 1, 3, padding=1)
        self.spatial_gate = nn.Sigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = super().forward(x)
        return x * self.spatial_gate(self.conv(x.mean(1, keepdim=True)))    # [B, 1, H, W]


@dataclass(frozen=True)
class FakeKind:
    """One registered fake kind: its record, its module class and a tiny seeded model using it."""
    kind: AttentionKind
    module: type

    @property
    def path(self) -> str:
        """Its key in ATTENTION_MODULES."""
        return f"{self.module.__module__}.{self.module.__qualname__}"

    @property
    def entry(self) -> tuple:
        return self.kind, "gate", "spatial_gate" if self.kind.has_spatial_gate else None

    def model(self, num_classes: int = 3, width: int = 8, seed: int = 0) -> nn.Module:
        """Our ResNet-18 (width `width`) with this kind's module after every residual block, eval mode."""
        torch.manual_seed(seed)
        model = attention_resnet(18, None, num_classes=num_classes, width=width)
        for stage in (model.layer1, model.layer2, model.layer3, model.layer4):
            for block in stage:
                block.attn = self.module(block.bn2.num_features)
        return model.eval()

    def loaded(self, labels: tuple[str, ...] = ("a", "b", "c"), size: int = 64) -> pretrained.LoadedModel:
        """`model()` as the app, the report and the study get a model: a user's file."""
        return pretrained.LoadedModel(f"{self.kind.name}-resnet18", "file", self.model(len(labels)),
                                      pretrained.Preprocess(size, 1.0, "bilinear"), labels,
                                      f"a ResNet-18 with {self.kind.display} attention (a test's own kind)")


VARIANTS = {"one gate": FakeKind(ONE_GATE, ToyAttention), "two gates": FakeKind(TWO_GATES, ToyTwoGates)}
