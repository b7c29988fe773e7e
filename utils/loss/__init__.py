"""Training objectives: the Wasserstein-like OT loss of MoSE (`ot_loss.py`, built from the
pairwise costs of `ot_cost.py` and the couplings of `ot_coupling.py`), and the baselines'
negative ELBO (`elbo.py`) and Monte-Carlo NLL (`ssn_nll.py`).

`objective(loss_fn)` adapts a loss to the engine's one call, `objective(out, labels,
label_probs) -> (loss, seg, kl)`, where `out` is the model's output dict.
May import `utils.labels` (argmax labels for the grouping); no other `utils` package.
"""

from typing import Any, Callable, Dict, Tuple

import torch


def objective(loss_fn: Any) -> Callable[..., Tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """The engine's view of a loss: `(out, labels, label_probs) -> (loss, seg, kl)`.

    `OTLoss` needs the (K, S) shape of the samples, read off the output (N = K·S); losses that
    already take the output dict are returned unchanged.
    """
    from utils.loss.ot_loss import OTLoss

    if not isinstance(loss_fn, OTLoss):
        return loss_fn

    def ot_objective(out: Dict[str, torch.Tensor], labels: torch.Tensor,
                     label_probs: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        K = out["expert_probs"].shape[1]
        S = out["pred"].shape[1] // K  # compact representation: N = K·S, expert-major
        return loss_fn(labels, out["pred"], out["weights"], label_probs, sample_shape=(K, S))

    return ot_objective
