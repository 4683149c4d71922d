"""The trainer's steps one at a time, on a few small synthetic images (fast)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pipeline.checkpoint import (
    build_checkpoint,
    init_weights,
    read_checkpoint,
    resume_training,
    save_checkpoint,
)
from pipeline.config import load_config
from pipeline.errors import PipelineError
from pipeline.noise import make_noise
from pipeline.train import Trainer
from pipeline.train.stopping import (
    due_for_validation,
    new_state,
    patience_exhausted,
    record_validation,
)

SMALL = [
    "model.name=conv",
    "model.features=4",
    "train.batch_size=4",
    "train.progress=false",
    "train.optimizer=adam",
    "train.lr=0.01",
    "train.epochs=3",
]


def images(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:16, :16] / 16.0
    return [
        np.clip(0.5 + 0.3 * np.sin(6 * xx * rng.uniform(0.5, 2) + 4 * yy), 0, 1).astype(np.float32)
        for _ in range(n)
    ]


def make_trainer(tmp_path, *extra: str, val: int = 2) -> Trainer:
    cfg = load_config(None, [*SMALL, *extra])
    return Trainer(cfg, images(8), images(val, seed=1), make_noise(cfg.noise), tmp_path, "cpu")


def weights(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in trainer.model.state_dict().items()}


def test_set_up_seeds_the_network_and_makes_the_checkpoint_folder(tmp_path) -> None:
    a, b = make_trainer(tmp_path / "a"), make_trainer(tmp_path / "b")
    other = make_trainer(tmp_path / "c", "run.seed=1")
    assert all(torch.equal(v, weights(b)[k]) for k, v in weights(a).items())
    assert not all(torch.equal(v, weights(other)[k]) for k, v in weights(a).items())
    assert (tmp_path / "a" / "checkpoints").is_dir() and a.start_epoch == 0 and len(a.data) == 8


def test_train_epoch_updates_the_weights_and_returns_the_mean_loss(tmp_path) -> None:
    trainer = make_trainer(tmp_path, "train.schedule=cosine")
    before = weights(trainer)
    lr = trainer.optimizer.param_groups[0]["lr"]
    loss = trainer.train_epoch(0)
    assert math.isfinite(loss) and loss > 0
    assert not all(torch.equal(v, trainer.model.state_dict()[k]) for k, v in before.items())
    assert trainer.optimizer.param_groups[0]["lr"] < lr  # one schedule step per epoch


def test_validate_epoch_runs_when_due_and_gives_loss_and_psnr(tmp_path) -> None:
    trainer = make_trainer(tmp_path, "train.validate_every=2")
    assert not trainer.validate_epoch(0, out_of_time=False).ran
    assert trainer.validate_epoch(0, out_of_time=True).ran  # the budget's last epoch validates
    val = trainer.validate_epoch(1, out_of_time=False)
    assert val.ran and val.loss > 0 and 0 < val.psnr < 100
    assert trainer.validate_epoch(2, out_of_time=False).ran  # the last epoch always validates
    assert [due_for_validation(e, trainer.tc, False) for e in range(3)] == [False, True, True]
    no_images = make_trainer(tmp_path / "none", val=0).validate_epoch(2, out_of_time=False)
    assert no_images.ran and math.isnan(no_images.psnr) and math.isnan(no_images.loss)


def test_best_epoch_and_patience() -> None:
    state = new_state()
    assert record_validation(state, True, 20.0) and state["best_val_psnr"] == 20.0
    assert (
        not record_validation(state, False, 30.0) and state["bad_epochs"] == 0
    )  # not validated: no change
    assert not record_validation(state, True, 19.0) and state["bad_epochs"] == 1
    cfg = load_config(None, ["train.early_stop_patience=2"]).train
    assert not patience_exhausted(state, cfg)
    assert not record_validation(state, True, 20.0) and patience_exhausted(state, cfg)
    assert (
        record_validation(state, True, math.nan) and state["best_val_psnr"] == 20.0
    )  # no images: follow last
    assert not patience_exhausted(state, load_config(None, []).train)  # no patience set


def test_write_checkpoints_keeps_best_only_when_it_improved(tmp_path) -> None:
    trainer = make_trainer(tmp_path)
    trainer.record_epoch(0, 0.5, trainer.validate_epoch(2, False), 1.0)
    trainer.write_checkpoints(1, best=True)
    first_best = weights(trainer)
    trainer.train_epoch(1)
    trainer.write_checkpoints(2, best=False)
    last, best = (read_checkpoint(tmp_path / "checkpoints" / f"{n}.pt") for n in ("last", "best"))
    assert last["epoch"] == 2 and best["epoch"] == 1
    assert all(torch.equal(best["model_state"][k], v) for k, v in first_best.items())
    assert (tmp_path / "train_log.csv").read_text().count(
        "\n"
    ) == 2  # header and the one recorded epoch
    trainer.finish()  # the model ends with best.pt's weights
    assert all(torch.equal(trainer.model.state_dict()[k], v) for k, v in first_best.items())


def test_cpu_training_keeps_channels_last_weights_and_checkpoints_load_anywhere(tmp_path) -> None:
    from pipeline.checkpoint import load_model

    trainer = make_trainer(tmp_path)
    trainer.train_epoch(0)
    trainer.validate_epoch(0, False)
    convs = [p for p in trainer.model.parameters() if p.dim() == 4 and p.shape[1] > 1]
    assert convs and all(p.is_contiguous(memory_format=torch.channels_last) for p in convs)
    trainer.write_checkpoints(1, best=True)
    loaded = load_model(tmp_path / "checkpoints" / "best.pt", "cpu").model
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in weights(trainer).items())


def test_fit_with_no_epoch_to_run_still_writes_both_checkpoints(tmp_path) -> None:
    result = make_trainer(tmp_path, "train.epochs=0").fit()
    assert read_checkpoint(result.last)["epoch"] == 0 and result.best.is_file() and result.log == []


def test_stopping_on_patience_ends_fit_early(tmp_path) -> None:
    trainer = make_trainer(
        tmp_path, "train.epochs=5", "train.lr=1e-12", "train.early_stop_patience=1"
    )
    result = trainer.fit()
    assert result.stopped_early and len(result.log) == 2 and trainer.should_stop(False)


def test_resume_and_init_check_the_model_section(tmp_path) -> None:
    trainer = make_trainer(tmp_path)
    trainer.train_epoch(0)
    state = {**new_state(), "bad_epochs": 1}
    ckpt = build_checkpoint(
        trainer.model, trainer.cfg, epoch=1, optimizer=trainer.optimizer, state=state
    )
    path = save_checkpoint(ckpt, tmp_path / "one.pt")
    fresh = make_trainer(tmp_path / "fresh")
    epoch, resumed = resume_training(path, fresh.cfg, fresh.model, fresh.optimizer, fresh.scheduler)
    assert epoch == 1 and resumed["bad_epochs"] == 1
    assert all(
        torch.equal(fresh.model.state_dict()[k], v) for k, v in trainer.model.state_dict().items()
    )
    other = make_trainer(tmp_path / "other", "model.features=8")
    with pytest.raises(PipelineError, match="train.resume: .* different model section"):
        resume_training(path, other.cfg, other.model, other.optimizer, None)
    with pytest.raises(PipelineError, match="train.init_from: .* different model section"):
        init_weights(path, other.cfg, other.model)
