"""Where does a trained MoSE's mode-mass error come from: the experts' samples or the gate? JSON.

    python -m research.gate_limit [--config experiments/synthetic_lidc.py]
        [--run-dir DIR] [--ckpt FILE] [--steps 2000] [--image-steps 600] [--weight-decay 1e-2]
        [--train-images N] [--split test] [--set KEY=VALUE ...]

For a run on the synthetic LIDC set (default: the demo's run folder and best checkpoint), on the
test split (`--split val`: the validation split, to choose settings):
- `mode_mass_error`: the trained model's (compact samples, as `main.py` reports it);
- `optimal_gate`: the error left with the same expert samples and the best possible expert
  weights π of each image (a linear programme per image: the mass of a true mode is linear in
  π). What the experts' masks alone cost;
- `refit_gate`: the error of a new gate fitted on the frozen model's training-split features
  with the training signal itself: at γ = 1 the coupling sends each annotation to its nearest
  sample, and the gate learns the share of annotations each expert receives (the KL term of
  the loss; cross-entropy, Adam, full batch, `--steps`). Four inputs:
  `bottleneck` (the paper gate's input: the global average of the bottleneck feature),
  `bottleneck_decoder` (average and maximum of the bottleneck and of the decoder feature),
  `all_levels` (average and maximum of the output of every U-Net block) and `true_cues` (the
  contrasts of core, halo and satellite and whether each is drawn, from the generator's
  parameters: no feature can carry more). The weight decay is 1e-2 (the refit option's),
  3e-2 for `all_levels` (its 288 inputs overfit at 1e-2; chosen on the validation split);
  `--weight-decay` sets one for all. `--train-images N` fits on the first N training images
  only (does the gate lack images?). A fifth, `image`, is a new image gate
  (`models.gating.ImageGatingNetwork`, the `gate_input='image'` option) fitted to the same
  targets on the training images as the refit option fits it (`fit_image_gate`,
  `--image-steps` steps of 128 flipped and turned images);
- `oracle_target`: a gate of the true cues fitted (no weight decay) to a noiseless target
  instead: each image's true mode masses spread over the experts in proportion to where their
  samples land in that image. What a gate of the image alone cannot know about these experts;
  its gap to `refit_gate.true_cues` is what the noise of four annotations per image costs;
- `expert_roles`: for every expert, its role (the true mode slot — 0 nothing, 1 core, 2 the
  third mode, halo or satellite — that receives most of its samples on the test images with
  three modes), the mean share of its samples on that role there, and its purity (the mean
  largest share of its samples on one mode, over all test images). An expert below 1 draws
  different modes in different images or draws; one weight per expert cannot follow it.
"""

import argparse
import json
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from scipy.optimize import linprog
from torch import nn

from benchmarks.provenance import provenance
from data.lidc import LIDCDataset
from data.synthetic.common import split_rngs
from data.synthetic.lidc import sample_params
from models.gating import ImageGatingNetwork
from utils.build import build_loss, run_dir_of
from utils.config.config import load_config
from utils.evaluation.calibration import mode_calibration
from utils.evaluation.inference import load_predictor
from utils.evaluation.results import true_modes_batch
from utils.evaluation.run import default_checkpoint
from utils.training.gate_refit import WEIGHT_DECAY, coupling_shares, fit_gate, fit_image_gate


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--config", default="experiments/synthetic_lidc.py")
    p.add_argument("--run-dir", default=None, help="run folder (default: the config's)")
    p.add_argument("--ckpt", default=None, help="weights (default: the run's best checkpoint)")
    p.add_argument("--steps", type=int, default=2000, help="full-batch steps of each gate fit")
    p.add_argument("--image-steps", type=int, default=600, help="steps of the image gate fit")
    p.add_argument("--weight-decay", type=float, default=None,
                   help="Adam weight decay of every fit (default: per input, see above)")
    p.add_argument("--split", default="test", choices=("test", "val"), help="split to score")
    p.add_argument("--train-images", type=int, default=None,
                   help="fit the gates on the first N training images (default: all)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    return p.parse_args(argv)


def load_split(root: Path, split: str):
    """Images (n, 1, S, S), annotations (n, M, S, S), true modes (n, T, S, S) and their
    probabilities (n, T) of a synthetic LIDC split, as the loaders read them (no augmentation;
    modes padded with zero probability)."""
    ds = LIDCDataset(str(root), split, augment=False)
    images, labels = (torch.stack(t) for t in zip(*(ds.load(i) for i in range(len(ds)))))
    modes, probs = true_modes_batch(ds, 0, len(ds), torch.device("cpu"))
    return images.float(), labels.long(), modes, probs


def true_cues(root: Path, split: str, n: int) -> torch.Tensor:
    """(n, 5) contrasts c, h, q and the drawn flags of halo and satellite, regenerated from the
    set's recorded generator settings (the split's first random draws)."""
    info = json.loads((root / "synthetic_info.json").read_text())
    p = sample_params(split_rngs(info["seed"])[split], info["counts"][split], info["size"],
                      info.get("satellite_with_halo", True))
    cues = np.stack([p["c"], p["h"], p["q"], p["h"] > 0, p["q"] > 0], axis=1)[:n]
    return torch.tensor(cues, dtype=torch.float32)


def avg_max(features: list) -> torch.Tensor:
    """Global average and maximum of every (B, F_i, h_i, w_i) map, side by side: (B, 2·Σ F_i)."""
    return torch.cat([f for t in features for f in (t.mean((2, 3)), t.amax((2, 3)))], 1)


@torch.no_grad()
def split_stats(model, loss_fn, images, labels, modes, probs, batch: int = 100) -> dict:
    """Per image of a split: the gate inputs, the experts' shares of the γ = 1 coupling (the KL
    term's target), the share of every expert's samples assigned to each true mode, the
    model's π and the true mode masses."""
    K, S = model.num_expert, model.sample_per_mode
    loss_fn.gamma = 1.0
    keys = ("image", "bottleneck", "bottleneck_decoder", "all_levels", "shares", "assign", "pi",
            "true", "valid")
    acc = {k: [] for k in keys}
    gen = torch.Generator().manual_seed(0)
    seen, blocks = [], []
    unet = model.backbone
    hooks = [unet.register_forward_hook(lambda m, args, out: seen.append(out))]
    hooks += [m.register_forward_hook(lambda m, args, out: blocks.append(out))
              for m in list(unet.contracting_path) + list(unet.upsampling_path)]
    for s in range(0, len(images), batch):
        x, y = images[s:s + batch], labels[s:s + batch]
        out = model(x, generator=gen)
        u_g, u_d = seen.pop()  # (B, F[-1], h, w), (B, F0, H, W)
        acc["all_levels"].append(avg_max(blocks))  # (B, 2·Σ F)
        blocks.clear()
        pred = out["pred"]  # (B, N, C, H, W), N = K·S expert-major
        acc["image"].append(x)  # (B, C_in, H, W)
        acc["bottleneck"].append(u_g.mean((2, 3)))  # (B, F[-1]), the paper gate's input
        acc["bottleneck_decoder"].append(avg_max([u_g, u_d]))  # (B, 2·(F[-1] + F0))
        gt_w = torch.full(y.shape[:2], 1.0 / y.shape[1])  # (B, M)
        acc["shares"].append(coupling_shares(loss_fn, pred, y, gt_w, K))  # (B, K)
        cal = mode_calibration(pred.argmax(2), out["weights"], modes[s:s + batch],
                               probs[s:s + batch], 2, [1])
        one_hot = torch.nn.functional.one_hot(cal["nearest"], modes.shape[1]).double()  # (B,N,T)
        acc["assign"].append(one_hot.view(len(x), K, S, -1).mean(2))  # (B, K, T)
        acc["pi"].append(out["expert_probs"].double())  # (B, K)
        acc["true"].append(cal["true"])  # (B, T)
        acc["valid"].append(cal["valid"])  # (B, T)
    for hook in hooks:
        hook.remove()
    return {k: torch.cat(v) for k, v in acc.items()}


def mass_error(pi: torch.Tensor, st: dict) -> float:
    """Mean over images of the mean |predicted − true| mode mass for expert weights π (n, K)."""
    predicted = torch.einsum("bk,bkt->bt", pi.double(), st["assign"])  # (n, T)
    gap = (predicted - st["true"]).abs() * st["valid"]
    return float((gap.sum(-1) / st["valid"].sum(-1)).mean())


def optimal_gate_error(st: dict) -> float:
    """The mass error with the best π of every image: min Σ_t e_t, e_t ≥ ±(Aᵀπ − p)_t, π ∈ Δ."""
    errors = []
    for A, true, valid in zip(st["assign"].numpy(), st["true"].numpy(), st["valid"].numpy()):
        K, V = A.shape[0], np.flatnonzero(valid)
        At, p, nv = A[:, V].T, true[V], len(V)  # (nv, K), (nv,)
        eye = np.eye(nv)
        res = linprog(np.r_[np.zeros(K), np.ones(nv)],
                      A_ub=np.r_[np.c_[At, -eye], np.c_[-At, -eye]], b_ub=np.r_[p, -p],
                      A_eq=np.r_[np.ones(K), np.zeros(nv)][None], b_eq=[1.0],
                      bounds=[(0, None)] * (K + nv))
        errors.append(res.fun / nv)
    return float(np.mean(errors))


def oracle_target(st: dict) -> torch.Tensor:
    """(n, K) noiseless gate target: every true mode's mass split over the experts in
    proportion to the share of each expert's samples on that mode in the image."""
    a = st["assign"]  # (n, K, T)
    spread = a / a.sum(1, keepdim=True).clamp_min(1e-12)  # (n, K, T)
    target = torch.einsum("bkt,bt->bk", spread, st["true"] * st["valid"])  # (n, K)
    return (target / target.sum(1, keepdim=True).clamp_min(1e-12)).float()


def expert_roles(st: dict) -> list:
    """Per expert: its main mode slot on the images with three modes, the mean share of its
    samples there, and its purity (mean largest share on one mode, all images). Without an
    image with three modes, the role is taken over all images."""
    a, three = st["assign"], st["valid"].sum(1) == 3  # (n, K, T), (n,)
    if not three.any():
        three = torch.ones_like(three)
    roles = []
    for k in range(a.shape[1]):
        mean = a[three, k].mean(0)  # (T,)
        role = int(mean.argmax())
        roles.append(dict(role=role, share=round(float(mean[role]), 3),
                          purity=round(float(a[:, k].amax(-1).mean()), 3)))
    return roles


def refit_gate(x_train: torch.Tensor, target: torch.Tensor, x_test: torch.Tensor, steps: int,
               weight_decay: float = WEIGHT_DECAY, seed: int = 0) -> torch.Tensor:
    """Fit a gate of the paper gate's MLP shape to the coupling shares, as the refit option
    does (`utils.training.gate_refit.fit_gate`); returns its π (n_test, K) on the test inputs."""
    width, K = max(32, x_train.shape[1]), target.shape[1]
    mlp = nn.Sequential(nn.Linear(x_train.shape[1], width), nn.ReLU(), nn.Linear(width, width),
                        nn.ReLU(), nn.Linear(width, K, bias=False))
    fit_gate(mlp, x_train, target, steps, seed, weight_decay)
    with torch.no_grad():
        return torch.softmax(mlp(x_test), 1)


def main() -> None:
    args = parse_args()
    cfg = load_config(args.config, args.set)
    run_dir = Path(args.run_dir) if args.run_dir else run_dir_of(cfg)
    found = sorted(run_dir.glob("*_best_ged.pth"))  # a bench_learning run names it by its tag
    ckpt = (Path(args.ckpt) if args.ckpt else found[0] if len(found) == 1
            else default_checkpoint(cfg, run_dir, None))
    model = load_predictor(cfg, ckpt, torch.device("cpu"))
    loss_fn, root = build_loss(cfg), Path(cfg.data_folder)
    images, labels, modes, probs = load_split(root, "train")
    n = args.train_images or len(images)
    train = split_stats(model, loss_fn, images[:n], labels[:n], modes[:n], probs[:n])
    test = split_stats(model, loss_fn, *load_split(root, args.split))
    train["true_cues"] = true_cues(root, "train", len(train["pi"]))
    test["true_cues"] = true_cues(root, args.split, len(test["pi"]))
    decay = dict(bottleneck=WEIGHT_DECAY, bottleneck_decoder=WEIGHT_DECAY,
                 all_levels=3 * WEIGHT_DECAY, true_cues=WEIGHT_DECAY)
    if args.weight_decay is not None:
        decay = dict.fromkeys(decay, args.weight_decay)
    refit = {name: mass_error(refit_gate(train[name], train["shares"], test[name], args.steps,
                                         wd), test) for name, wd in decay.items()}
    gate = ImageGatingNetwork(images.shape[1], train["shares"].shape[1])
    fit_image_gate(gate, train["image"], train["shares"], args.image_steps, seed=0)
    with torch.no_grad():
        refit["image"] = mass_error(gate(test["image"]), test)
    oracle = mass_error(refit_gate(train["true_cues"], oracle_target(train), test["true_cues"],
                                   args.steps, 0.0), test)
    print(json.dumps({"config": args.config, "checkpoint": str(ckpt),
                      "mode_mass_error": mass_error(test["pi"], test),
                      "optimal_gate": optimal_gate_error(test), "refit_gate": refit,
                      "oracle_target": {"true_cues": oracle},
                      "expert_roles": expert_roles(test),
                      "train_images": len(train["pi"]), "split": args.split,
                      "split_images": len(test["pi"]), "weight_decay": decay,
                      "steps": args.steps, "image_steps": args.image_steps,
                      "provenance": provenance()}, indent=2))


if __name__ == "__main__":
    main()
