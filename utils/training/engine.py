"""The training engine: one epoch of training (`train_one_epoch`); `evaluate` is the evaluation
loop of `utils.evaluation.loop`, re-exported so the engine offers both (DINO/MAE style)."""

import time
from typing import Any, Dict, Optional

import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from utils.evaluation.loop import evaluate, to_device
from utils.loss import objective
from utils.runtime.distributed import average_across_ranks
from utils.training.schedulers import LossMonitor

__all__ = ["evaluate", "train_one_epoch"]


def train_one_epoch(model: nn.Module, loader: DataLoader, loss_fn: Any,
                    optimizer: torch.optim.Optimizer, monitor: LossMonitor, device: torch.device,
                    generator: Optional[torch.Generator] = None,
                    epoch: int = 0, deadline: Optional[float] = None,
                    usage: Optional[Any] = None) -> Dict[str, float]:
    """One epoch of training (cut short at `deadline`).

    Args:
        model: MoSE (its current `sample_per_mode` sets S), or any model with the same output.
        loader: yields (x (B, C_in, H, W), labels (B, M, H, W) int64, label_probs (B, M)).
        loss_fn: `OTLoss` (its `gamma` and `G` are whatever the schedulers set), or a loss
            taking the output dict (`utils.loss.objective`).
        optimizer: the optimiser.
        monitor: accumulates the losses (epoch and running means).
        device: where to compute.
        generator: generator for the latent sampling (None: torch's global one).
        epoch: epoch number, for the progress bar and error messages.
        deadline: a `time.time()` after which no further step starts (all ranks stop together);
            None: the whole epoch.
        usage: None, or an `ExpertUsage` (training.revive) summing the per-expert coupling.
    Returns:
        dict: epoch means `loss`, `seg`, `kl`; running means `running_loss`, `running_kl`;
        `steps`; `cut_short` (the deadline ended the epoch).
    """
    model.train()
    monitor.start_epoch()
    if isinstance(loader.sampler, DistributedSampler):
        loader.sampler.set_epoch(epoch)  # a new shuffle every epoch, the same on every rank
    compute_loss = objective(loss_fn)
    for step, batch in enumerate(tqdm(loader, desc=f"train {epoch}", leave=False, disable=None)):
        x, labels, label_probs = to_device(batch, device)
        # all models take the annotations: MoSE masks void pixels, the baselines draw one per image
        out = model(x, label=labels, generator=generator, label_probs=label_probs)
        loss, seg, kl = compute_loss(out, labels, label_probs)
        if usage is not None:
            usage.update(loss_fn)
        late = float(deadline is not None and time.time() > deadline)
        # DDP: every rank monitors (and stops on) the mean over ranks, so schedulers agree
        shared = average_across_ranks(torch.cat([torch.stack([loss, seg, kl]).detach(),
                                                 loss.new_tensor([late])]))  # (4,)
        losses, cut_short = shared[:3], bool(shared[3] > 0)
        if not torch.isfinite(losses[0]):
            raise FloatingPointError(
                f"non-finite training loss ({losses[0].item()}) at epoch {epoch}, step {step}; "
                "try a lower lr or check the data"
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        mean_loss, mean_seg, mean_kl = losses.tolist()
        monitor.update(loss=mean_loss, seg=mean_seg, kl=mean_kl)
        if cut_short:
            break
    if monitor.epoch_count == 0:
        raise ValueError("the training loader yielded no batch: is train_batch_size larger than "
                         "the training set (the last incomplete batch is dropped)?")
    return dict(loss=monitor.epoch("loss"), seg=monitor.epoch("seg"), kl=monitor.epoch("kl"),
                running_loss=monitor.running("loss"), running_kl=monitor.running("kl"),
                steps=monitor.epoch_count, cut_short=monitor.epoch_count < len(loader))
