"""The trainer's running state: where the run stands (`Progress`) and the parts whose state the
next epoch depends on (`TrainingParts`); both go into the resume file (`utils.training.resume`)
under the names of their fields.
"""

from dataclasses import asdict, dataclass, fields
from typing import Any, Dict


@dataclass
class Progress:
    """Where a training run stands after an epoch.

    Attributes:
        epoch: the last completed epoch (0: the validation before the first).
        best_ged: the best validation GED so far.
        planned: the epochs the run will have (`epochs`, fewer under `max_train_minutes`).
        elapsed: training time so far, in seconds.
    """

    epoch: int
    best_ged: float
    planned: int
    elapsed: float

    def state_dict(self) -> Dict[str, Any]:
        """Plain values, for the resume file."""
        return asdict(self)


@dataclass
class TrainingParts:
    """What steps the run besides the model, each with `state_dict` / `load_state_dict`.

    Attributes:
        optimizer: Adam.
        lr_scheduler: `ReduceLROnPlateau` or `CosineLR`.
        param_schedulers: the γ / S / G schedulers (`TrainingParamSchedulers`).
        monitor: the loss monitor the schedulers read (`LossMonitor`).
    """

    optimizer: Any
    lr_scheduler: Any
    param_schedulers: Any
    monitor: Any

    def state_dicts(self) -> Dict[str, Any]:
        """Field name -> that part's `state_dict()`."""
        return {f.name: getattr(self, f.name).state_dict() for f in fields(self)}

    def load_state_dicts(self, states: Dict[str, Any]) -> None:
        """Restore every part from `states` (as `state_dicts` returned them)."""
        for f in fields(self):
            getattr(self, f.name).load_state_dict(states[f.name])
