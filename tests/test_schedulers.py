"""Parameter schedulers (gamma / S / G) and the loss monitor that feeds them."""

import math
import time
from types import SimpleNamespace

import pytest
import torch

from utils.config.config import load_config
from utils.training.schedulers import CosineLR, LossMonitor, ParamScheduler, TrainingParamSchedulers
from utils.training.trainer import planned_epochs


def steps_until_move(scheduler: ParamScheduler, metrics) -> int:
    """1-based index of the first epoch on which the scheduler moves (0 if never)."""
    for epoch, m in enumerate(metrics, start=1):
        if scheduler.step(m):
            return epoch
    return 0


@pytest.mark.parametrize("patience", [0, 1, 2, 10])
def test_moves_when_bad_epochs_exceed_patience(patience):
    # epoch 1 sets the best; epochs 2.. are not strictly lower; the move comes when the count
    # of bad epochs reaches patience + 1, i.e. on epoch patience + 2
    s = ParamScheduler([0.5, 1.0], patience)
    assert steps_until_move(s, [1.0] * 30) == patience + 2
    assert s.value == 1.0 and s.index == 1


def test_strict_improvement_resets_the_count():
    s = ParamScheduler([0.5, 1.0], patience=2)
    # 3, 3 (bad 1), 2.9 (best), 2.9 (bad 1), 2.95 (bad 2), 3 (bad 3 > 2: move on epoch 6)
    assert steps_until_move(s, [3, 3, 2.9, 2.9, 2.95, 3, 3]) == 6


def test_best_is_reset_after_a_move():
    s = ParamScheduler([1.0, 0.95, 0.9], patience=1)
    assert steps_until_move(s, [1.0, 1.0, 1.0]) == 3
    # after the move the best is forgotten: a value higher than the old best counts as improvement
    assert not s.step(5.0)
    assert s.best == 5.0 and s.num_bad_epochs == 0
    assert steps_until_move(s, [5.0, 5.0]) == 2
    assert s.value == 0.9 and s.finished
    assert steps_until_move(s, [9.0] * 10) == 0  # stays on the last value


def test_milestones_move_at_fixed_epochs_whatever_the_loss():
    s = ParamScheduler([0.125, 0.5, 1.0], milestones=[2, 5])
    moves = [s.step(1.0 / epoch, epoch) for epoch in range(1, 8)]
    assert moves == [False, True, False, False, True, False, False]
    assert s.value == 1.0
    with pytest.raises(ValueError, match="either patience or milestones"):
        ParamScheduler([1, 2])


def test_state_dict_round_trip():
    s = ParamScheduler([1, 2], patience=3)
    for m in (2.0, 1.0, 1.5):
        s.step(m)
    t = ParamScheduler([1, 2], patience=3)
    t.load_state_dict(s.state_dict())
    assert t.state_dict() == s.state_dict() == dict(index=0, best=1.0, num_bad_epochs=1)
    expected = [False, False, True]  # bad epochs 2, 3, then 4 > patience
    assert [s.step(1.5) for _ in range(3)] == [t.step(1.5) for _ in range(3)] == expected


def test_loss_monitor_running_mean_is_never_reset():
    mon = LossMonitor("running")
    mon.start_epoch()
    for v in (4.0, 2.0):
        mon.update(loss=v, kl=1.0)
    mon.start_epoch()
    mon.update(loss=0.0, kl=4.0)
    assert mon.epoch("loss") == 0.0
    assert mon.running("loss") == pytest.approx(2.0)  # (4 + 2 + 0) / 3
    assert mon.monitored("kl") == pytest.approx(2.0)
    assert LossMonitor("epoch").mode == "epoch"
    epoch_mon = LossMonitor("epoch")
    epoch_mon.load_state_dict(mon.state_dict())
    epoch_mon.start_epoch()
    epoch_mon.update(loss=1.0, kl=0.0)
    assert epoch_mon.monitored("loss") == 1.0
    assert epoch_mon.running("loss") == pytest.approx(7.0 / 4)
    with pytest.raises(ValueError):
        LossMonitor("mean")


def test_training_schedulers_apply_values_and_watch_the_right_loss():
    model = SimpleNamespace(sample_per_mode=1)
    loss_fn = SimpleNamespace(gamma=1 / 32, G=1.0)
    ps = TrainingParamSchedulers(model, loss_fn, dict(values=[1.0], patience=0),
                                 dict(values=[2], patience=0),
                                 dict(values=[0.95, 0.925], patience=0))
    assert ps.step(total_loss=1.0, kl_loss=1.0) == []
    # total loss keeps improving, the KL does not: only G moves
    assert ps.step(total_loss=0.5, kl_loss=1.0) == ["G 1.0 -> 0.95"]
    assert ps.values() == dict(gamma=1 / 32, S=1, G=0.95)
    # now the total loss stalls: gamma and S move together
    moves = ps.step(total_loss=0.5, kl_loss=0.1)
    assert moves == ["gamma 0.03125 -> 1.0", "S 1 -> 2"]
    assert model.sample_per_mode == 2 and isinstance(model.sample_per_mode, int)
    state = ps.state_dict()
    model2, loss2 = SimpleNamespace(sample_per_mode=1), SimpleNamespace(gamma=1 / 32, G=1.0)
    ps2 = TrainingParamSchedulers(model2, loss2, dict(values=[1.0], patience=0),
                                  dict(values=[2], patience=0),
                                  dict(values=[0.95, 0.925], patience=0))
    ps2.load_state_dict(state)
    assert ps2.values() == ps.values() == dict(gamma=1.0, S=2, G=0.95)


def test_disabled_schedulers_never_move():
    ps = TrainingParamSchedulers(SimpleNamespace(sample_per_mode=4),
                                 SimpleNamespace(gamma=0.5, G=1.0))
    assert all(ps.step(math.inf, math.inf) == [] for _ in range(5))
    assert ps.values() == dict(gamma=0.5, S=4, G=1.0)


def test_cosine_lr_decays_to_min_over_the_planned_epochs():
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    sched = CosineLR(opt, min_lr=0.0)
    lrs = []
    for epoch in range(1, 5):
        sched.step(epoch, total_epochs=4)
        lrs.append(opt.param_groups[0]["lr"])
    assert lrs == pytest.approx([0.5 * (1 + math.cos(math.pi * e / 4)) for e in range(1, 5)])
    assert lrs[-1] == pytest.approx(0.0)
    # a shrinking plan (a time budget) compresses the rest of the decay
    sched.step(2, total_epochs=3)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.25)


def test_planned_epochs_fit_the_time_budget():
    cfg = load_config(None, ["max_train_minutes=2.0", "epochs=10"])
    # 2 epochs took 50 s: 70 s are left, room for 2 more
    assert planned_epochs(cfg, time.time() - 50, 2, 10) == 4
    assert planned_epochs(cfg, time.time() - 150, 2, 10) == 2  # over budget: stop now
    assert planned_epochs(cfg, time.time() - 1, 2, 3) == 3  # never more than planned
    assert planned_epochs(load_config(None, ["epochs=10"]), time.time() - 600, 2, 10) == 10
