"""Pairwise costs between predicted samples and annotations for the OT loss.

Both costs are computed as batched matrix products against one-hot annotations, so the
(B, N, M, C, H·W) tensor of all pairs is never formed; `num_chunks` further splits the
annotations to bound the one-hot tensor (B, M, C, H·W) for large inputs (Cityscapes).
"""

import torch
import torch.nn.functional as F


def one_hot_classes(gt: torch.Tensor, num_classes: int, first_class: int,
                    dtype: torch.dtype) -> torch.Tensor:
    """One-hot annotations for classes first_class..C-1, classes leading.

    Args:
        gt: (B, M, P) int labels, P = H·W.

    Returns:
        (B, C - first_class, P, M) float.
    """
    classes = torch.arange(first_class, num_classes, device=gt.device)  # (C')
    return (gt.transpose(1, 2)[:, None] == classes[None, :, None, None]).to(dtype)


def iou_cost(pred: torch.Tensor, gt: torch.Tensor, num_chunks: int = 1) -> torch.Tensor:
    """Soft IoU cost `1 - mean_{c>=1} (I + 1) / (U + 1)` (class 0, background, excluded).

    Args:
        pred: (B, N, C, H, W) probabilities.
        gt: (B, M, H, W) int labels.
        num_chunks: split the annotations into this many chunks.

    Returns:
        (B, N, M) cost, differentiable in `pred`.
    """
    B, N, C, H, W = pred.shape
    p = pred[:, :, 1:].reshape(B, N, C - 1, H * W).transpose(1, 2)  # (B, C-1, N, P)
    p_sum = p.sum(-1)  # (B, C-1, N)
    costs = []
    for g in gt.reshape(B, gt.shape[1], H * W).chunk(num_chunks, dim=1):
        y = one_hot_classes(g, C, 1, pred.dtype)  # (B, C-1, P, Mc)
        inter = p @ y  # (B, C-1, N, Mc)
        union = p_sum[..., None] + y.sum(2)[:, :, None] - inter  # (B, C-1, N, Mc)
        costs.append(1 - ((inter + 1) / (union + 1)).mean(1))  # (B, N, Mc)
    return torch.cat(costs, dim=2)  # (B, N, M)


def ce_cost(pred: torch.Tensor, gt: torch.Tensor, num_chunks: int = 1) -> torch.Tensor:
    """Per-pixel cross-entropy of each sample against each annotation, averaged over pixels.

    Args:
        pred: (B, N, C, H, W) logits.
        gt: (B, M, H, W) int labels.
        num_chunks: split the annotations into this many chunks.

    Returns:
        (B, N, M) cost, differentiable in `pred`.
    """
    B, N, C, H, W = pred.shape
    P = H * W
    logp = F.log_softmax(pred, dim=2).reshape(B, N, C * P)  # (B, N, C·P)
    # reference behaviour: the first pixel in flattened order is left out of the average (an
    # indexing slip in the authors' code meant to drop class 0); kept so numbers are identical.
    # Its label is set to -1 so its one-hot row is empty.
    labels = gt.reshape(B, gt.shape[1], P).clone()  # (B, M, P)
    labels[..., 0] = -1
    classes = torch.arange(C, device=gt.device)[None, None, :, None]  # (1, 1, C, 1)
    costs = []
    for g in labels.chunk(num_chunks, dim=1):
        y = (g[:, :, None, :] == classes).to(pred.dtype).reshape(B, -1, C * P)  # (B, Mc, C·P)
        costs.append(-(logp @ y.transpose(1, 2)) / (P - 1))  # (B, N, Mc)
    return torch.cat(costs, dim=2)  # (B, N, M)


COSTS = {"iou": iou_cost, "ce": ce_cost}
