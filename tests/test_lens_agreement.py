"""Channel agreement between two images (SE paper Sec. 7.2): Pearson correlation per block."""
import numpy as np
import pytest
import torch

from blocks import AttentionRecord, attention_resnet, capture_attention
from lens.agreement import channel_agreement
from viz.channels import channel_agreement_chart


def record(name: str, weights) -> AttentionRecord:
    return AttentionRecord(name, f"{name}.attn", "se", 1, 0, torch.tensor([weights], dtype=torch.float32), None,
                           (1, 1), None, None)


def test_equals_numpys_correlation_on_real_captures():
    torch.manual_seed(0)
    model = attention_resnet(18, "se", num_classes=4, width=8, ratio=2).eval()
    a, b = (capture_attention(model, torch.randn(1, 3, 32, 32)).layers for _ in range(2))
    expected = [np.corrcoef(ra.channel[0].numpy(), rb.channel[0].numpy())[0, 1] for ra, rb in zip(a, b)]
    np.testing.assert_allclose(channel_agreement(a, b), expected, atol=1e-6)
    np.testing.assert_allclose(channel_agreement(a, a), [1.0] * len(a), atol=1e-9)


def test_known_values_and_saturated_gates():
    a = [record("layer1.0", [0.1, 0.5, 0.9]), record("layer1.1", [1.0, 1.0, 1.0])]
    b = [record("layer1.0", [0.9, 0.5, 0.1]), record("layer1.1", [0.2, 0.4, 0.6])]
    values = channel_agreement(a, b)
    assert values[0] == pytest.approx(-1.0) and np.isnan(values[1])
    spec = channel_agreement_chart(["layer1.0", "layer1.1"], values).to_dict()
    rows = next(iter(spec["datasets"].values()))
    assert [r["correlation"] for r in rows] == [pytest.approx(-1.0), None]
    assert spec["encoding"]["y"]["scale"]["domain"] == [-1, 1]


def test_captures_of_different_models_are_refused():
    with pytest.raises(ValueError, match="the two captures must come from the same model"):
        channel_agreement([record("layer1.0", [0.1, 0.2])], [record("layer2.0", [0.1, 0.2])])
