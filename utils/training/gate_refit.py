"""Refitting the gating network after training (the `gate_refit_steps` option; off in the paper
configs, not in the authors' code).

During training the gating network learns the expert weights π from the KL term alone, whose
target changes with every step while the experts and the backbone move, and whose step size the
schedule has decayed by the time the experts settle. `benchmarks/bench_gate_limit.py` measures
what that costs on the synthetic LIDC demo: the trained gate leaves a mode-mass error of
0.07-0.10, and a new gate fitted to the same training signal on the same frozen features does
better on every run measured (README "Synthetic demos"; what remains comes from experts whose
samples land on different modes in different images, which no weight per expert can follow).

The refit is that fit, done once at the end of training on the best checkpoint:
1. one pass over the training split (its loader, augmentation included) with the model in eval
   mode collects the gate's pooled input (`GatingNetwork.pool`) and the training signal: with
   capacity γ = 1 the coupling sends every annotation to its nearest sample (the loss' own
   cost and coupling), and each expert's share of the annotation mass is the target;
2. the gate's MLP is re-initialised (seeded) and fitted to those shares by full-batch Adam on
   standardised inputs, with the cross-entropy whose gradient the KL term gives;
3. the standardisation is folded into the first linear layer, so the gate keeps its
   architecture and its checkpoint keys.
The backbone and the experts are not touched: the samples, and every metric that does not use
the weights (M-IoU of the samples), stay as they were.
"""

from typing import Any, Dict

import torch
from torch import nn

LR = 3e-3  # Adam on standardised inputs; full batch
WEIGHT_DECAY = 1e-2  # the targets are shares of four annotations, noisy; chosen on the synthetic
# LIDC validation split among 1e-3 .. 1e-1 (README "Synthetic demos")


@torch.no_grad()
def collect(model: nn.Module, loader: Any, loss_fn: Any, device: torch.device,
            generator: torch.Generator) -> Dict[str, torch.Tensor]:
    """Pooled gate inputs and γ = 1 coupling shares of every training image.

    Args:
        model: MoSE in eval mode (compact representation is forced for the pass).
        loader: yields (x, labels, label_probs) like the training loader.
        loss_fn: the run's `OTLoss` (its cost and coupling; γ is set to 1 for the pass).
        device: where to compute.
        generator: the latent sampling generator.

    Returns:
        `inputs` (n, D) float32 and `shares` (n, K) float32 (rows summing to one), on the CPU.
    """
    K, seen = model.num_expert, []
    hook = model.gating.register_forward_hook(lambda m, args, out: seen.append(args[0]))
    gamma, standard = loss_fn.gamma, model.eval_sample_num
    loss_fn.gamma, model.eval_sample_num = 1.0, None
    inputs, shares = [], []
    try:
        for x, labels, label_probs in loader:
            x, labels = x.to(device), labels.to(device)
            label_probs = label_probs.to(device)
            out = model(x, label=labels, generator=generator)  # pred (B, N, C, H, W)
            inputs.append(model.gating.pool(seen.pop()).float().cpu())  # (B, D)
            shares.append(coupling_shares(loss_fn, out["pred"], labels, label_probs, K).cpu())
    finally:
        hook.remove()
        loss_fn.gamma, model.eval_sample_num = gamma, standard
    return dict(inputs=torch.cat(inputs), shares=torch.cat(shares))


def coupling_shares(loss_fn: Any, pred: torch.Tensor, labels: torch.Tensor,
                    label_probs: torch.Tensor, K: int) -> torch.Tensor:
    """Every expert's share of the annotation mass under the loss' coupling at its current γ.

    Args:
        loss_fn: `OTLoss` (its cost and coupling).
        pred: (B, N, C, H, W) compact samples, N = K·S expert-major.
        labels: (B, M, H, W) annotations; label_probs: (B, M) their weights.
        K: number of experts.

    Returns:
        (B, K) float32 rows summing to one.
    """
    cost = loss_fn.cost_matrix(pred.float(), labels)  # (B, N, M)
    P = loss_fn.coupling(cost, label_probs.to(cost.dtype))  # (B, N, M)
    share = P.sum(-1).view(pred.shape[0], K, -1).sum(-1)  # (B, K)
    return (share / share.sum(-1, keepdim=True).clamp_min(1e-12)).float()


def gate_loss(logits: torch.Tensor, shares: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of softmax(logits) (n, K) against the target shares (n, K)."""
    return -(shares * torch.log_softmax(logits, dim=1)).sum(1).mean()


def fit_gate(mlp: nn.Sequential, inputs: torch.Tensor, shares: torch.Tensor, steps: int,
             seed: int, weight_decay: float = WEIGHT_DECAY) -> Dict[str, float]:
    """Re-initialise the MLP and fit it to the shares; the standardisation is folded in.

    Args:
        mlp: a gate's MLP (`GatingNetwork.fc_layer`: Linear first), changed in place.
        inputs: (n, D) pooled inputs; shares: (n, K) targets.
        steps: full-batch Adam steps.
        seed: seed of the re-initialisation (the global RNG state is restored afterwards).
        weight_decay: Adam's weight decay.

    Returns:
        the gate loss on the inputs before and after the refit.
    """
    param = next(mlp.parameters())
    inputs, shares = inputs.to(param), shares.to(param)
    with torch.no_grad():
        before = float(gate_loss(mlp(inputs), shares))
    mean, std = inputs.mean(0), inputs.std(0).clamp_min(1e-6)  # (D,)
    z = (inputs - mean) / std  # (n, D)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for layer in mlp:
            if isinstance(layer, nn.Linear):
                layer.reset_parameters()
    opt = torch.optim.Adam(mlp.parameters(), lr=LR, weight_decay=weight_decay)
    with torch.enable_grad():
        for _ in range(steps):
            opt.zero_grad(set_to_none=True)
            gate_loss(mlp(z), shares).backward()
            opt.step()
    with torch.no_grad():  # W·(x − m)/s + b = (W/s)·x + (b − (W/s)·m)
        first = mlp[0]
        first.weight.div_(std)
        first.bias.sub_(first.weight @ mean)
        after = float(gate_loss(mlp(inputs), shares))
    return dict(before=before, after=after)


def refit_gate(model: nn.Module, loader: Any, loss_fn: Any, device: torch.device, steps: int,
               seed: int) -> Dict[str, float]:
    """Refit the gating network of a trained MoSE in place (module docstring).

    Returns:
        the training-set gate loss before and after, and the number of images used.
    """
    model.eval()
    generator = torch.Generator(device=device).manual_seed(seed)
    data = collect(model, loader, loss_fn, device, generator)
    stats = fit_gate(model.gating.fc_layer, data["inputs"], data["shares"], steps, seed)
    return dict(stats, images=len(data["inputs"]))
