"""Resumable training: an interrupted-then-resumed run ends with exactly the weights of an
uninterrupted one, and a checkpoint of another recipe is refused."""
import json
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file

from blocks import attention_resnet, attention_sites

import pretrained
from lens.card import evaluate, main, render_card
from pretrained import registry
from pretrained.architecture import model_from_state_dict
from pretrained.bundled import to_input
from pretrained.registry import load_trained
from training import train as training
from training.train import LOGIT_MARGIN, RECIPES, GateLogits, Recipe, RecipeMismatch, save, train, train_step

TINY = Recipe(dataset=2, width=4, size=96, train_images=40, validation_images=20, epochs=3, batch=8,
              label_smoothing=0.0, gate_weight_decay=0.5, mixed_precision=True, gate_logit_penalty=0.1)  # recipe 4's switches


class Interrupt(Exception):
    pass


def interrupt_in_epoch(n):
    """A log function that raises on the first progress line of epoch n (mid-run, as a kill would)."""
    def log(line):
        if line.startswith(f"epoch {n}/"):
            raise Interrupt(line)
    return log


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Every run of this module on one thread (a run's thread count is logged), restored after."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    return train("cbam", TINY, tmp_path_factory.mktemp("straight"), log=lambda s: None)


@pytest.mark.slow
def test_resumed_training_equals_uninterrupted(uninterrupted, tmp_path):
    model, info = uninterrupted
    with pytest.raises(Interrupt):
        train("cbam", TINY, tmp_path, log=interrupt_in_epoch(2))
    with pytest.raises(Interrupt):                          # resumes after epoch 1, stops in epoch 3
        train("cbam", TINY, tmp_path, log=interrupt_in_epoch(3))
    lines = []
    resumed, resumed_info = train("cbam", TINY, tmp_path, log=lines.append)
    assert lines[0] == f"resuming {tmp_path / 'cbam-resnet18-shapes.pt'} after epoch 2/3"
    expected, got = model.state_dict(), resumed.state_dict()
    assert expected.keys() == got.keys()
    for name in expected:
        assert torch.equal(expected[name], got[name]), name
    assert [e["loss"] for e in resumed_info["epochs"]] == [e["loss"] for e in info["epochs"]]
    assert [e["epoch"] for e in resumed_info["epochs"]] == [1, 2, 3]
    assert resumed_info["threads"] == [1, 1, 1]             # one entry per run segment
    lines = []
    again, _ = train("cbam", TINY, tmp_path, log=lines.append)   # a finished run: loaded, not retrained
    assert lines == [f"resuming {tmp_path / 'cbam-resnet18-shapes.pt'} after epoch 3/3"]
    assert torch.equal(again.fc.weight, model.fc.weight)


@pytest.mark.slow
def test_other_recipe_is_refused(uninterrupted, tmp_path):
    with pytest.raises(Interrupt):
        train("se", TINY, tmp_path, log=interrupt_in_epoch(2))
    with pytest.raises(RecipeMismatch, match=r"lr: checkpoint 0\.004, now 0\.001.*--checkpoint-dir"):
        train("se", Recipe(**{**TINY.__dict__, "lr": 1e-3}), tmp_path, log=lambda s: None)
    with pytest.raises(RecipeMismatch, match=r"mixed_precision: checkpoint True, now False"):
        train("se", Recipe(**{**TINY.__dict__, "mixed_precision": False}), tmp_path, log=lambda s: None)
    # another model in the same directory has its own checkpoint
    train("eca", Recipe(**{**TINY.__dict__, "lr": 1e-3, "epochs": 1}), tmp_path, log=lambda s: None)


def test_save_writes_fp16_weights_and_training_log(uninterrupted, tmp_path):
    model, info = uninterrupted
    path = save(model, "cbam", TINY, info, tmp_path)
    tensors = load_file(path)
    assert tensors["fc.weight"].dtype == torch.float16
    torch.testing.assert_close(tensors["fc.weight"].float(), model.fc.weight, atol=1e-3, rtol=1e-3)
    log = json.loads((tmp_path / "cbam-resnet18-shapes.train.json").read_text())
    assert [e["epoch"] for e in log["epochs"]] == [1, 2, 3]
    assert all(e["seconds"] > 0 and 0 <= e["validation_accuracy"] <= 1 and e["loss"] > 0 for e in log["epochs"])
    assert log["recipe"]["dataset"] == 2 and log["recipe"]["gate_weight_decay"] == 0.5
    assert log["threads"] == [1] and log["wall_seconds"] >= 0


@pytest.mark.slow
def test_trained_candidates_get_a_card_beside_them(uninterrupted, tmp_path):
    model, info = uninterrupted
    save(model, "cbam", TINY, info, tmp_path)
    plain, plain_info = train(None, Recipe(**{**TINY.__dict__, "epochs": 1}), tmp_path / "ckpt", log=lambda s: None)
    save(plain, None, TINY, plain_info, tmp_path)
    main(["--weights", str(tmp_path), "--images", "30", "--faithfulness", "0"])   # deletion: tests of its own
    card = json.loads((tmp_path / "card.json").read_text())
    assert list(card) == ["cbam-resnet18-shapes", "plain-resnet18-shapes"]
    assert card["cbam-resnet18-shapes"] == json.loads(json.dumps(evaluate("cbam-resnet18-shapes", 30, weights=tmp_path)))
    assert set(card["cbam-resnet18-shapes"]["accuracy"]) == {"in distribution", "small", "grayscale", "low_contrast",
                                                             "clutter"}
    assert card["cbam-resnet18-shapes"]["training_log"]["epochs"] == info["epochs"]
    assert (tmp_path / "MODEL_CARD.md").read_text() == render_card(card)
    assert "| 3 | " in (tmp_path / "MODEL_CARD.md").read_text()          # the per-epoch log: 3 epochs


def saturated_se(bias: float):
    """A tiny SE ResNet whose every channel gate has logit `bias` for every image."""
    torch.manual_seed(0)
    model = attention_resnet(18, "se", num_classes=10, width=4, ratio=4)
    with torch.no_grad():
        for site in attention_sites(model):
            site.module.fc2.weight.zero_()
            site.module.fc2.bias.fill_(bias)
    return model


@pytest.mark.parametrize("bias, expected", [(10.0, 16.0), (-9.0, 9.0), (5.9, 0.0)])
def test_gate_logit_penalty_counts_only_what_lies_beyond_the_margin(bias, expected):
    model = saturated_se(bias)
    with GateLogits(model) as gates:
        model(torch.randn(2, 3, 32, 32))
    assert len(gates.logits) == 8 and LOGIT_MARGIN == 6.0
    assert gates.penalty().item() == pytest.approx(expected)              # (|bias| - 6)^2 in every gate
    model(torch.randn(2, 3, 32, 32))
    assert len(gates.logits) == 8                                         # hooks gone after the with


def test_the_penalty_pulls_saturated_gates_back_and_the_step_reports_the_classification_loss():
    x, labels = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 3])
    biases = {}
    for penalty in (0.0, 0.1):
        recipe = Recipe(**{**TINY.__dict__, "mixed_precision": False, "gate_logit_penalty": penalty})
        model = saturated_se(20.0)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        with torch.no_grad():
            expected = F.cross_entropy(model(x), labels).item()
        assert train_step(model, optimizer, x, labels, recipe).item() == pytest.approx(expected, rel=1e-6)
        biases[penalty] = model.layer1[0].attn.fc2.bias.detach().clone()
    # d/db of 0.1 * mean over 8 gates of mean((b - 6)^2) is 0.1 * 2 * 14 / (8 * 4 channels); SGD lr 0.1
    torch.testing.assert_close(biases[0.0] - biases[0.1], torch.full((4,), 0.1 * 0.1 * 2 * 14 / 32), atol=1e-6, rtol=0)


def test_an_override_makes_a_pilot_that_never_writes_over_the_bundled_weights(capsys, monkeypatch, tmp_path):
    with pytest.raises(SystemExit) as stop:
        training.main(["--attention", "se", "--size", "160"])
    assert stop.value.code == 2
    assert ("error: --size makes a pilot: give it an --out folder (the bundled weights come from a recipe as it "
            "stands)") in capsys.readouterr().err
    ran = []
    log = {"epochs": [{"epoch": 2}], "wall_seconds": 1}
    monkeypatch.setattr(training, "train", lambda attention, recipe, *a, **k: ran.append(recipe) or (None, log))
    monkeypatch.setattr(training, "save", lambda model, attention, recipe, info, out: out / "se.safetensors")
    training.main(["--attention", "se", "--size", "160", "--epochs", "2", "--out", str(tmp_path)])
    assert capsys.readouterr().out == f"saved {tmp_path / 'se.safetensors'}: {{'epoch': 2}}, 1 s\n"
    assert ran == [Recipe(**{**training.asdict(training.RECIPES[4]), "size": 160, "epochs": 2})]


STEMLESS = replace(RECIPES[5], width=4, size=96, train_images=32, validation_images=16, epochs=1, batch=8)


@pytest.mark.slow
def test_a_file_without_the_stem_pool_loads_back_as_that_model(tmp_path, monkeypatch):
    """The stem's max-pool leaves no trace in the weights: the bundled loader and a user's upload of
    the same file build what the metadata says (the trained model's logits), where inference from
    the weights alone would not."""
    model, info = train("cbam", STEMLESS, tmp_path / "ckpt", log=lambda s: None)
    path = save(model, "cbam", STEMLESS, info, tmp_path)
    with safe_open(str(path), "pt") as f:
        assert json.loads(f.metadata()["architecture"])["stem_pool"] is False
    expected = attention_resnet(18, "cbam", num_classes=10, width=4, ratio=4, stem_pool=False).eval()
    expected.load_state_dict({k: v.half().to(v.dtype) for k, v in model.state_dict().items()})   # as stored
    x = torch.randn(2, 3, 96, 96)
    uploaded = pretrained.load(path.read_bytes(), device="cpu")     # a user's file: its metadata says it too
    monkeypatch.setattr(registry, "WEIGHTS_DIR", tmp_path)          # as if it were bundled
    bundled = pretrained.load("cbam-resnet18-shapes", device="cpu")
    with torch.no_grad():
        for loaded in (load_trained(path), bundled, uploaded):
            assert loaded.model.stem_pool is False
            torch.testing.assert_close(loaded.model(x), expected(x), atol=1e-5, rtol=1e-5)
        inferred = model_from_state_dict(load_file(path)).model    # weights alone cannot tell
        assert inferred.stem_pool is True and not torch.allclose(inferred(x), expected(x), atol=1e-3)


def test_a_step_makes_its_inputs_on_the_datas_device():
    """On the meta device (a stand-in for a GPU here): the normalised, augmented batch and the
    model's output stay there (`Preprocess.normalise` makes its mean and std on the input's device)."""
    images = torch.zeros(4, 64, 64, 3, dtype=torch.uint8, device="meta")
    model, _ = training.build("cbam", STEMLESS, torch.device("meta"))
    x = training.augment(to_input(images), torch.Generator().manual_seed(0))
    assert x.device.type == model(x).device.type == "meta"
