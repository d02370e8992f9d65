"""Shared test fixtures: tiny seeded models, nothing downloaded."""
import threading

import pytest
import torch
from torch import nn

from blocks import attention_resnet, sites
from fake_kind import VARIANTS, FakeKind

KINDS = ("se", "eca", "cbam")
torch.set_num_threads(1)     # tiny models gain nothing from a second thread, and two OpenMP programs
                             # spinning on two shared cores (a test run beside a training) slow both 5x


def randomize_batchnorm(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BatchNorm random affine parameters and running statistics, so that eval-mode
    comparisons exercise them instead of an identity."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.num_features, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    return model


def in_threads(work, n: int = 8) -> None:
    """Run work(0) .. work(n - 1) on n threads at once, and wait for all of them."""
    threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


@pytest.fixture(params=KINDS)
def kind(request) -> str:
    return request.param


@pytest.fixture
def tiny_model(kind) -> nn.Module:
    """A seeded ResNet-18 of width 8 with `kind` attention, eval mode, 10 classes."""
    torch.manual_seed(0)
    return randomize_batchnorm(attention_resnet(18, kind, num_classes=10, width=8, ratio=4)).eval()


@pytest.fixture(params=list(VARIANTS))
def fake_kind(request, monkeypatch) -> FakeKind:
    """A fourth attention kind, registered in `blocks.sites.ATTENTION_MODULES` for this test only and
    run once with one gate ("toy", like SE/ECA) and once with two ("toy2", like CBAM): its
    `.kind` record, `.model()` (a tiny seeded ResNet-18 using it) and `.loaded()` (that model as a
    `pretrained.LoadedModel`). See tests/fake_kind.py."""
    fake = VARIANTS[request.param]
    sites._spec.cache_clear()            # the cache is keyed by module class: forget what it knew
    monkeypatch.setitem(sites.ATTENTION_MODULES, fake.path, fake.entry)
    yield fake
    monkeypatch.undo()
    sites._spec.cache_clear()
