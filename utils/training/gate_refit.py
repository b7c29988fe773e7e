"""Refitting the gating network after training (the `gate_refit_steps` option; off in the paper
configs, not in the authors' code).

During training the gating network learns the expert weights π from the KL term alone, whose
target changes with every step while the experts and the backbone move, and whose step size the
schedule has decayed by the time the experts settle. `research/gate_limit.py` measures
what that costs on the synthetic LIDC demo: a new gate fitted to the same training signal on
the same frozen inputs does better than the trained one on every run measured
(docs/extensions.md).

The refit is that fit, done once at the end of training on the best checkpoint:
1. one pass over the training split (its loader, augmentation included) with the model in eval
   mode collects the gate's pooled input (`GatingNetwork.pool`) and the training signal: with
   capacity γ = 1 the loss' own cost and coupling send every annotation to its nearest sample
   (or, with coupling='expert', to its nearest expert), and each expert's share of the
   annotation mass is the target;
2. the gate's MLP is re-initialised (seeded) and fitted to those shares by full-batch Adam on
   standardised inputs, with the cross-entropy whose gradient the KL term gives;
3. the standardisation is folded into the first linear layer, so the gate keeps its
   architecture and its checkpoint keys.
An image gate (`gate_input='image'`) collects the images instead and is re-initialised whole
and fitted by AdamW on batches of images in random views (`fit_image_gate`).
The backbone and the experts are not touched: the samples, and every metric that does not use
the weights (M-IoU of the samples), stay as they were.
"""

from typing import Any, Dict, Iterator

import torch
from torch import nn

from models.gating import ImageGatingNetwork

LR = 3e-3  # Adam on standardised inputs; full batch
IMAGE_BATCH = 128  # images per step of an image gate's refit
WEIGHT_DECAY = 1e-2  # the targets are shares of four annotations, noisy; chosen on the synthetic
# LIDC validation split among 1e-3 .. 1e-1 (docs/extensions.md)


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
        `inputs` (n, D) float32 (for an image gate: the images, (n, C_in, H, W)) and `shares`
        (n, K) float32 (rows summing to one), on the CPU.
    """
    image_gate = isinstance(model.gating, ImageGatingNetwork)
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
            gate_in = seen.pop()  # (B, C_in, H, W) image or (B, F[-1], h, w) bottleneck
            gate_in = gate_in if image_gate else model.gating.pool(gate_in)
            inputs.append(gate_in.float().cpu())  # (B, C_in, H, W) or (B, D)
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
    P = loss_fn.coupling(cost, label_probs.to(cost.dtype), (K, pred.shape[1] // K))  # (B, N, M)
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


def random_view(x: torch.Tensor, views: str = "dihedral") -> torch.Tensor:
    """x (B, C, H, W) in a random one of its `views` (`models.gating.image_views`), one draw of
    the global RNG for the whole batch: 'dihedral', random flips and, for square images, a
    random quarter turn; 'flip_lr', a random left-right flip (the same draws)."""
    flip_h, flip_v, turns = torch.randint(0, 2, (2,)).tolist() + torch.randint(0, 4, (1,)).tolist()
    if flip_h:
        x = x.flip(3)
    if views != "dihedral":
        return x
    if flip_v:
        x = x.flip(2)
    return torch.rot90(x, turns, (2, 3)) if x.shape[2] == x.shape[3] else x


def epoch_batches(n: int, size: int) -> Iterator[torch.Tensor]:
    """Endless index batches: every epoch a new permutation of range(n) cut into batches of
    `size` (an incomplete last batch is dropped; with n < size, one batch of all n)."""
    while True:
        order = torch.randperm(n)
        for start in range(0, max(n - size, 0) + 1, size):
            yield order[start:start + size]


def fit_image_gate(gate: nn.Module, images: torch.Tensor, shares: torch.Tensor, steps: int,
                   seed: int, weight_decay: float = WEIGHT_DECAY) -> Dict[str, float]:
    """Re-initialise an `ImageGatingNetwork` and fit it to the shares (in place).

    AdamW (weight decay `weight_decay`) with a cosine decay from `LR` over `steps` steps of
    `IMAGE_BATCH` images, each batch in a random one of the gate's views (`random_view`: flipped
    and turned for 'dihedral', mirrored for 'flip_lr'): the training signal of one pass is only
    four annotations per image, and a CNN would learn them by heart. The views are those the
    dataset allows (`data.specs`, `gate_views`): the mode probabilities do not depend on them.

    Args:
        gate: the image gate, changed in place.
        images: (n, C_in, H, W) inputs; shares: (n, K) targets.
        steps: Adam steps.
        seed: seed of the re-initialisation and of the batches (the global RNG state is
            restored afterwards).
        weight_decay: AdamW's weight decay.

    Returns:
        the gate loss on the images before and after the refit.
    """
    param = next(gate.parameters())
    # channels-last weights and images: about twice as fast on a CPU (float rounding differs)
    gate.to(memory_format=torch.channels_last)
    images = images.to(param).contiguous(memory_format=torch.channels_last)
    shares, n = shares.to(param), len(images)

    @torch.no_grad()
    def loss_on_all() -> float:
        total = 0.0
        for x, t in zip(images.split(IMAGE_BATCH), shares.split(IMAGE_BATCH)):
            total += float(gate_loss(gate.logits(x), t)) * len(x)
        return total / n

    before = loss_on_all()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for layer in gate.modules():
            if isinstance(layer, (nn.Linear, nn.Conv2d)):
                layer.reset_parameters()
        opt = torch.optim.AdamW(gate.parameters(), lr=LR, weight_decay=weight_decay)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(steps, 1))
        batches = epoch_batches(n, IMAGE_BATCH)
        with torch.enable_grad():
            for _ in range(steps):
                idx = next(batches).to(images.device)  # (IMAGE_BATCH,)
                opt.zero_grad(set_to_none=True)
                gate_loss(gate.logits(random_view(images[idx], gate.views)), shares[idx]).backward()
                opt.step()
                schedule.step()
    after = loss_on_all()
    gate.to(memory_format=torch.contiguous_format)  # checkpoints keep the usual layout
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
    if isinstance(model.gating, ImageGatingNetwork):
        stats = fit_image_gate(model.gating, data["inputs"], data["shares"], steps, seed)
    else:
        stats = fit_gate(model.gating.fc_layer, data["inputs"], data["shares"], steps, seed)
    return dict(stats, images=len(data["inputs"]))
