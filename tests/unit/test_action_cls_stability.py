"""The pieces that keep `action_cls` from collapsing: gradient scaling for the head warm-up, the divergence watch."""

import math
import types

import pytest
import torch

from llamafactory_video.losses import scale_gradient
from llamafactory_video.train.action_cls.trainer import DivergenceWatch, TrainingDivergedError


@pytest.mark.parametrize("scale", [0.0, 0.25, 1.0])
def test_scale_gradient_matches_naive_reference(scale):
    torch.manual_seed(0)
    x = torch.randn(3, 5, requires_grad=True)
    weight = torch.randn(5, 2)
    y = scale_gradient(x, scale)
    torch.testing.assert_close(y, x)  # identity forward
    (y @ weight).pow(2).sum().backward()
    ref = x.detach().clone().requires_grad_(True)
    (ref @ weight).pow(2).sum().backward()
    torch.testing.assert_close(x.grad, scale * ref.grad)


def test_scale_zero_still_gives_every_upstream_parameter_a_gradient():
    r"""DDP needs every parameter to take part in backward: scale 0 gives zeros, not None."""
    layer = torch.nn.Linear(4, 4)
    out = scale_gradient(layer(torch.randn(2, 4)), 0.0).sum()
    out.backward()
    assert layer.weight.grad is not None and torch.count_nonzero(layer.weight.grad) == 0


def test_head_warmup_stops_the_classification_gradient_at_the_backbone():
    from llamafactory_video.model.action_head import ActionHead, ActionHeadConfig, attach_action_head
    from llamafactory_video.train.action_cls.trainer import forward_action_logits

    class Backbone(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(10, 8)
            self.proj = torch.nn.Linear(8, 8)

        def get_input_embeddings(self):
            return self.embed

        def forward(self, input_ids, **kwargs):
            hidden = self.proj(self.embed(input_ids))
            return types.SimpleNamespace(hidden_states=(hidden,), loss=None)

    for scale, backbone_moves in ((0.0, False), (1.0, True)):
        torch.manual_seed(0)
        model = Backbone()
        head = attach_action_head(model, ActionHead(ActionHeadConfig(8, 3), token_id=9, init_embedding=torch.ones(8)))
        ids = torch.tensor([[1, 2, 9], [3, 9, 4]])
        logits, _ = forward_action_logits(model, {"input_ids": ids}, 9, False, backbone_grad_scale=scale)
        torch.nn.functional.cross_entropy(logits, torch.tensor([0, 2])).backward()
        assert torch.count_nonzero(head.decoder.net.weight.grad) > 0
        assert bool(torch.count_nonzero(model.proj.weight.grad) > 0) is backbone_moves
        assert bool(torch.count_nonzero(head.token_embedding.weight.grad) > 0) is backbone_moves


def _args(tmp_path):
    return types.SimpleNamespace(output_dir=str(tmp_path))


def _feed(watch, tmp_path, windows):
    state = types.SimpleNamespace(global_step=0)
    for step, (loss, accuracy) in enumerate(windows, start=1):
        state.global_step = step * 12
        watch.on_log(
            _args(tmp_path),
            state,
            None,
            logs={"loss": loss, "action_cls/loss_cls": loss, "action_cls/accuracy": accuracy, "learning_rate": 3e-3},
        )


CHANCE = math.log(4)


def test_watch_stops_a_classifier_that_learned_then_collapsed(tmp_path):
    watch = DivergenceWatch(num_classes=4, action="stop", patience=3)
    with pytest.raises(TrainingDivergedError, match=r"collapsed to chance.*steps 36-60") as err:
        _feed(watch, tmp_path, [(1.2, 0.4), (0.6, 0.8), (1.386, 0.25), (1.39, 0.25), (1.387, 0.23)])
    message = str(err.value)
    assert "learning_rate" in message and str(tmp_path) in message and "action_divergence_check: warn" in message


def test_watch_stops_at_a_non_finite_loss(tmp_path):
    watch = DivergenceWatch(num_classes=4)
    with pytest.raises(TrainingDivergedError, match="diverged: the classification loss is nan at step 24"):
        _feed(watch, tmp_path, [(1.2, 0.4), (float("nan"), 0.0)])


def test_watch_is_quiet_on_slow_starts_and_recoveries(tmp_path):
    watch = DivergenceWatch(num_classes=4, patience=3)
    # at chance from the start (has not learned yet): not a collapse
    _feed(watch, tmp_path, [(CHANCE, 0.25)] * 10)
    # learned, dipped to chance twice, recovered: the count restarts
    _feed(watch, tmp_path, [(0.5, 0.9), (CHANCE, 0.25), (CHANCE, 0.25), (0.7, 0.7), (CHANCE, 0.25), (CHANCE, 0.25)])


def test_watch_warns_once_in_warn_mode(tmp_path, monkeypatch):
    from llamafactory_video.train.action_cls import trainer

    warnings = []
    monkeypatch.setattr(trainer.logger, "warning_rank0", lambda message, *a, **k: warnings.append(message))
    watch = DivergenceWatch(num_classes=4, action="warn", patience=2)
    _feed(watch, tmp_path, [(0.5, 0.9)] + [(CHANCE, 0.25)] * 6)
    assert len(warnings) == 1 and "collapsed to chance" in warnings[0]


def test_watch_warns_when_training_ends_at_chance(tmp_path, monkeypatch):
    from llamafactory_video.train.action_cls import trainer

    warnings = []
    monkeypatch.setattr(trainer.logger, "warning_rank0", lambda message, *a, **k: warnings.append(message))
    never = DivergenceWatch(num_classes=4)
    _feed(never, tmp_path, [(CHANCE, 0.25)] * 5)
    never.on_train_end(_args(tmp_path), None, None)
    learned = DivergenceWatch(num_classes=4)
    _feed(learned, tmp_path, [(CHANCE, 0.25), (0.4, 0.9)])
    learned.on_train_end(_args(tmp_path), None, None)
    assert len(warnings) == 1 and "ended training at chance" in warnings[0] and "step 60" in warnings[0]


class _FakeTrainer:
    def __init__(self, output_dir, model, fail=None):
        self.args = types.SimpleNamespace(output_dir=output_dir)
        self.model = model
        self.is_deepspeed_enabled = self.is_fsdp_enabled = False
        self.fail = fail
        self.saved_to = []

    def is_world_process_zero(self):
        return True

    def _save(self, output_dir):
        self.saved_to.append(output_dir)
        if self.fail:
            raise self.fail


def _peft_model():
    from peft import LoraConfig, get_peft_model

    base = torch.nn.Sequential(torch.nn.Linear(4, 4))
    return get_peft_model(base, LoraConfig(target_modules=["0"], r=2))


def test_preflight_save_stops_before_step_0_on_what_the_first_save_would_hit(tmp_path):
    from llamafactory_video.train.trainer_utils import preflight_save

    # the adapter save path fails (e.g. the peft vocab_size crash): named, before training
    trainer = _FakeTrainer(str(tmp_path / "out"), _peft_model(), fail=AttributeError("no attribute 'vocab_size'"))
    with pytest.raises(RuntimeError, match="could not be saved.*vocab_size.*before the first step"):
        preflight_save(trainer)
    assert trainer.saved_to and not any(p.exists() for p in (tmp_path / "out").iterdir())  # the probe is gone

    # output_dir cannot be created (a file is in the way): named
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="`output_dir` .*file/out is not writable"):
        preflight_save(_FakeTrainer(str(tmp_path / "file" / "out"), _peft_model()))

    # a working save leaves nothing behind
    ok = _FakeTrainer(str(tmp_path / "ok"), _peft_model())
    preflight_save(ok)
    assert ok.saved_to and list((tmp_path / "ok").iterdir()) == []
