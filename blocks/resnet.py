"""ResNet (He, Zhang, Ren, Sun, "Deep Residual Learning for Image Recognition", CVPR 2016) with an
attention block in every residual block, after its last BatchNorm and before the residual add --
where the SE (Fig. 3), ECA (Fig. 2 / official code) and CBAM (Fig. 3) papers put it. The blocks
scale that BN output in place outside autograd (see `blocks.scale`), as torchvision's ReLUs do.

Parameter names follow torchvision (`conv1`, `bn1`, `layer1.0.conv1`, ..., `fc`), so torchvision
and timm ResNet weights map onto it; the attention module of a block is `layerS.I.attn`.
"""
from dataclasses import dataclass

import torch
from torch import nn

from .cbam import CBAMBlock
from .checks import check_choice
from .eca import ECABlock
from .se import SEBlock


@dataclass(frozen=True)
class AttentionOptions:
    """Settings of the attention blocks; the defaults are the papers'."""
    ratio: int = 16                 # SE / CBAM-MLP reduction r (SE paper Sec. 6.1)
    bias: bool = True               # biases in the excitation MLP (SE paper, official CBAM)
    se_mode: str = "avg"            # SE squeeze: "avg" (paper) or "max" (seed article)
    k_size: int | tuple | None = None  # ECA kernel: None = adaptive, an int, or one per stage
    gamma: float = 2                # ECA Eq. 12
    b: float = 1                    # ECA Eq. 12
    channel_mode: str = "FC"        # CBAM channel attention: "FC" (paper) or "Conv"
    spatial_kernel: int = 7         # CBAM spatial conv (paper Sec. 4.1: 7 is best)
    spatial_bn: bool = True         # BatchNorm after the spatial conv (official CBAM code)

    def stage_k_size(self, stage: int) -> int | None:
        if isinstance(self.k_size, (tuple, list)):
            if len(self.k_size) != 4:
                raise ValueError(f"k_size needs one kernel per stage (4 values), got {self.k_size!r}")
            return self.k_size[stage]
        return self.k_size


ATTENTION = {
    None: lambda c, stage, o: nn.Identity(),
    "se": lambda c, stage, o: SEBlock(o.se_mode, c, o.ratio, bias=o.bias, inplace=True),
    "eca": lambda c, stage, o: ECABlock(c, o.gamma, o.b, k_size=o.stage_k_size(stage), inplace=True),
    "cbam": lambda c, stage, o: CBAMBlock(o.channel_mode, o.spatial_kernel, channels=c, spatial_bn=o.spatial_bn,
                                          inplace=True, **({"ratio": o.ratio, "bias": o.bias} if o.channel_mode == "FC"
                                                           else {"gamma": o.gamma, "b": o.b,
                                                                 "k_size": o.stage_k_size(stage)})),
}


def conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride, padding=1, bias=False)


def conv1x1(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, stride, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convs (ResNet-18/34); attention on the second BN's output."""
    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int, downsample: nn.Module | None, attn: nn.Module):
        super().__init__()
        self.conv1 = conv3x3(cin, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.attn = attn
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.attn(self.bn2(self.conv2(out)))
        out += identity                               # in place, as torchvision and timm
        return self.relu(out)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (stride here, as torchvision "ResNet v1.5") -> 1x1 x4; attention on bn3's output."""
    expansion = 4

    def __init__(self, cin: int, planes: int, stride: int, downsample: nn.Module | None, attn: nn.Module):
        super().__init__()
        self.conv1 = conv1x1(cin, planes)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * 4)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.attn = attn
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.attn(self.bn3(self.conv3(out)))
        out += identity
        return self.relu(out)


DEPTHS = {
    18: (BasicBlock, (2, 2, 2, 2)),
    34: (BasicBlock, (3, 4, 6, 3)),
    50: (Bottleneck, (3, 4, 6, 3)),
    101: (Bottleneck, (3, 4, 23, 3)),
    152: (Bottleneck, (3, 8, 36, 3)),
}


class AttentionResNet(nn.Module):
    """A torchvision-layout ResNet whose residual blocks each carry an attention module."""

    def __init__(self, depth: int = 50, attention: str | None = None, num_classes: int = 1000,
                 width: int = 64, options: AttentionOptions = AttentionOptions(),
                 zero_init_residual: bool = False, stem_pool: bool = True):
        super().__init__()
        block, counts = DEPTHS[check_choice("ResNet depth", depth, DEPTHS)]
        make_attention = ATTENTION[check_choice("attention", attention, ATTENTION)]
        if not isinstance(width, int) or width < 1:
            raise ValueError(f"width must be a positive integer, got {width!r}")
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}")
        self.depth, self.attention, self.width, self.options = depth, attention, width, options
        self.stem_pool = stem_pool

        self.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        # without it (as CIFAR-style and small-image ResNets) every stage sees twice the resolution;
        # it has no parameters, so nothing in the weights says which a model has
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1) if stem_pool else nn.Identity()
        stem_reduction = 4 if stem_pool else 2
        # the stem, then one entry per stage, as timm's models declare them (`blocks.sites` reads it)
        self.feature_info = [dict(num_chs=width, reduction=2, module="relu")]
        cin = width
        for stage, count in enumerate(counts):
            planes, stride = width * 2 ** stage, (1 if stage == 0 else 2)
            cout = planes * block.expansion
            blocks = []
            for i in range(count):
                downsample = None
                if i == 0 and (stride != 1 or cin != cout):
                    downsample = nn.Sequential(conv1x1(cin, cout, stride), nn.BatchNorm2d(cout))
                blocks.append(block(cin, planes, stride if i == 0 else 1, downsample,
                                    make_attention(cout, stage, options)))
                cin = cout
            setattr(self, f"layer{stage + 1}", nn.Sequential(*blocks))
            self.feature_info.append(dict(num_chs=cout, reduction=stem_reduction * 2 ** stage,
                                          module=f"layer{stage + 1}"))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)
        self._init_weights(zero_init_residual)

    def _init_weights(self, zero_init_residual: bool) -> None:
        """torchvision's initialisation: He-normal convs, unit BN; optionally zero the last BN."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, (BasicBlock, Bottleneck)):
                    nn.init.zeros_(m.bn2.weight if isinstance(m, BasicBlock) else m.bn3.weight)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))   # [B, w, H/4, W/4] (H/2 without the pool)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return x                                               # [B, 8w*e, H/32, W/32] (H/16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.avgpool(self.forward_features(x)), 1))  # [B, classes]


def attention_resnet(depth: int = 50, attention: str | None = None, num_classes: int = 1000,
                     width: int = 64, zero_init_residual: bool = False, stem_pool: bool = True,
                     **options) -> AttentionResNet:
    """Build a ResNet-`depth` with `attention` in {None, "se", "eca", "cbam"} after every block.

    `options` are fields of `AttentionOptions` (ratio, bias, se_mode, k_size, gamma, b,
    channel_mode, spatial_kernel, spatial_bn); `width` is the stem width (64 = torchvision);
    `stem_pool=False` drops the stem's 3x3/2 max-pool (same parameters, stages at twice the resolution).
    """
    valid = AttentionOptions.__dataclass_fields__
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(f"unknown option(s) {', '.join(unknown)}; valid options: {', '.join(valid)}")
    return AttentionResNet(depth, attention, num_classes, width, AttentionOptions(**options),
                           zero_init_residual, stem_pool)
