"""Plateau schedulers of the MoSE training parameters (gamma, S, G) and the loss they monitor.

Each scheduler walks through a list of values: it moves to the next one when the monitored loss
has not strictly decreased for more than `patience` epochs, then forgets its best value. gamma and
S watch the total training loss, G watches the KL term (docs/design.md, 'Schedulers of γ, S
and G').
"""

import math
from typing import Any, Dict, List, Optional, Sequence


class ParamScheduler:
    """Step through `values` when a monitored quantity stops improving (or at fixed epochs).

    Args:
        values: the values in order; `values[0]` is the initial value.
        patience: epochs without a strict improvement that are tolerated; the move happens on
            the epoch that makes the count exceed `patience`.
        milestones: instead of `patience`, the epochs after which to move (one per move); for
            short runs where no plateau is reached.
    """

    def __init__(self, values: Sequence[float], patience: Optional[int] = None,
                 milestones: Optional[Sequence[int]] = None):
        if not values:
            raise ValueError("ParamScheduler needs at least one value")
        if (patience is None) == (milestones is None):
            raise ValueError("ParamScheduler needs either patience or milestones")
        self.values = list(values)
        self.patience = patience
        self.milestones = None if milestones is None else list(milestones)
        self.index = 0
        self.best = math.inf
        self.num_bad_epochs = 0

    @property
    def value(self) -> float:
        """The current value."""
        return self.values[self.index]

    @property
    def finished(self) -> bool:
        """True once the last value is reached."""
        return self.index == len(self.values) - 1

    def step(self, metric: float, epoch: Optional[int] = None) -> bool:
        """Record one epoch's monitored value.

        Args:
            metric: the monitored loss (lower is better).
            epoch: the epoch just finished (needed with milestones).
        Returns:
            True if the scheduler moved to the next value.
        """
        if self.milestones is not None:
            move = not self.finished and epoch in self.milestones
        else:
            if metric < self.best:
                self.best = metric
                self.num_bad_epochs = 0
            else:
                self.num_bad_epochs += 1
            move = self.num_bad_epochs > self.patience and not self.finished
        if move:
            self.index += 1
            self.best = math.inf
            self.num_bad_epochs = 0
        return move

    def state_dict(self) -> Dict[str, Any]:
        """Counters and position, for resuming."""
        return dict(index=self.index, best=self.best, num_bad_epochs=self.num_bad_epochs)

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Restore what `state_dict` returned."""
        self.index = state["index"]
        self.best = state["best"]
        self.num_bad_epochs = state["num_bad_epochs"]


class LossMonitor:
    """Means of the training losses over the epoch and since training began.

    reference behaviour: the authors' schedulers see the mean over every iteration since the start
    of training, never reset (`mode='running'`); `mode='epoch'` gives the mean of the last epoch.

    Args:
        mode: 'running' or 'epoch'.
    """

    def __init__(self, mode: str = "running"):
        if mode not in ("running", "epoch"):
            raise ValueError(f"LossMonitor mode must be 'running' or 'epoch', got {mode!r}")
        self.mode = mode
        self.total: Dict[str, float] = {}
        self.count = 0
        self.epoch_total: Dict[str, float] = {}
        self.epoch_count = 0

    def start_epoch(self) -> None:
        """Reset the per-epoch sums."""
        self.epoch_total, self.epoch_count = {}, 0

    def update(self, **values: float) -> None:
        """Add one iteration's losses (floats)."""
        for k, v in values.items():
            self.total[k] = self.total.get(k, 0.0) + v
            self.epoch_total[k] = self.epoch_total.get(k, 0.0) + v
        self.count += 1
        self.epoch_count += 1

    def running(self, key: str) -> float:
        """Mean of `key` over all iterations since the start."""
        return self.total[key] / max(self.count, 1)

    def epoch(self, key: str) -> float:
        """Mean of `key` over the current epoch."""
        return self.epoch_total[key] / max(self.epoch_count, 1)

    def monitored(self, key: str) -> float:
        """The value the schedulers see for `key` under this monitor's mode."""
        return self.running(key) if self.mode == "running" else self.epoch(key)

    def state_dict(self) -> Dict[str, Any]:
        """Sums and counts, for resuming."""
        return dict(total=dict(self.total), count=self.count)

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Restore what `state_dict` returned."""
        self.total, self.count = dict(state["total"]), state["count"]


class TrainingParamSchedulers:
    """The gamma, S and G schedulers of a run, applied to the loss and the model.

    Args:
        model: has a `sample_per_mode` attribute (S).
        loss_fn: has `gamma` and `G` attributes.
        gamma_options, S_options, G_options: None (fixed), dict(values=[...], patience=int) or
            dict(values=[...], milestones=[epoch, ...]), where `values` are the values taken
            after the initial one.
    """

    def __init__(self, model: Any, loss_fn: Any, gamma_options: Optional[dict] = None,
                 S_options: Optional[dict] = None, G_options: Optional[dict] = None):
        self.model, self.loss_fn = model, loss_fn
        self.schedulers: Dict[str, ParamScheduler] = {}
        for name, options in (("gamma", gamma_options), ("S", S_options), ("G", G_options)):
            if options is not None:
                if self._current(name) is None:
                    raise ValueError(f"a {name} schedule was given but the loss / model has no "
                                     f"{name} (a baseline method): set {name}_scheduler_options "
                                     "to None")
                values = [self._current(name), *options["values"]]
                self.schedulers[name] = ParamScheduler(values, options.get("patience"),
                                                       options.get("milestones"))

    def _current(self, name: str) -> Optional[float]:
        owner, attr = (self.model, "sample_per_mode") if name == "S" else (self.loss_fn, name)
        return getattr(owner, attr, None)

    def values(self) -> Dict[str, float]:
        """Current gamma, S and G (those the loss and model have: none for the baselines)."""
        current = {name: self._current(name) for name in ("gamma", "S", "G")}
        return {name: value for name, value in current.items() if value is not None}

    def step(self, total_loss: float, kl_loss: float, epoch: Optional[int] = None) -> List[str]:
        """Feed one epoch's monitored losses; apply any move to the loss / model.

        Args:
            total_loss: watched by gamma and S.
            kl_loss: watched by G.
            epoch: the epoch just finished (for milestones).
        Returns:
            One message per scheduler that moved, e.g. "gamma 0.5 -> 1.0".
        """
        moves = []
        for name, scheduler in self.schedulers.items():
            old = scheduler.value
            if scheduler.step(kl_loss if name == "G" else total_loss, epoch):
                self._apply(name, scheduler.value)
                moves.append(f"{name} {old} -> {scheduler.value}")
        return moves

    def _apply(self, name: str, value: float) -> None:
        if name == "gamma":
            self.loss_fn.gamma = value
        elif name == "S":
            self.model.sample_per_mode = int(value)
        else:
            self.loss_fn.G = value

    def state_dict(self) -> Dict[str, Any]:
        """Every scheduler's state, for resuming."""
        return {name: s.state_dict() for name, s in self.schedulers.items()}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Restore the schedulers and re-apply their current values."""
        for name, s in self.schedulers.items():
            s.load_state_dict(state[name])
            self._apply(name, s.value)


class CosineLR:
    """Cosine decay of the learning rate from its initial value to `min_lr`, stepped per epoch.

    The number of epochs it spans can shrink during the run (a wall-clock budget that will not
    fit every epoch); the decay then still ends at `min_lr` on the last epoch that is run.

    Args:
        optimizer: its param groups' current `lr` is the initial value.
        min_lr: the final learning rate.
    """

    def __init__(self, optimizer: Any, min_lr: float = 0.0):
        self.optimizer = optimizer
        self.base_lrs = [group["lr"] for group in optimizer.param_groups]
        self.min_lr = min_lr

    def step(self, epochs_done: int, total_epochs: int) -> None:
        """Set the learning rate of the next epoch.

        Args:
            epochs_done: epochs completed so far.
            total_epochs: epochs the run will have in all (the decay ends after the last).
        """
        progress = min(epochs_done / max(total_epochs, 1), 1.0)
        factor = 0.5 * (1.0 + math.cos(math.pi * progress))
        for group, base in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = self.min_lr + (base - self.min_lr) * factor

    def state_dict(self) -> Dict[str, Any]:
        """Initial learning rates, for resuming."""
        return dict(base_lrs=list(self.base_lrs), min_lr=self.min_lr)

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Restore what `state_dict` returned."""
        self.base_lrs, self.min_lr = list(state["base_lrs"]), state["min_lr"]
