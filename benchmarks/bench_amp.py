"""Do bf16 autocast and torch.compile change the metrics? Prints one JSON object.

    python -m benchmarks.bench_amp [--device cuda] [--steps 40] [--compile]

Trains the LIDC paper model briefly in fp32 on a synthetic 128×128 LIDC-like set, then evaluates
the same test batch with fp32 and with bf16 autocast (costs, coupling and metrics in fp32), with
the same sampling generator, and reports GED / M-IoU / ECE of both and the largest probability
difference. With --compile the compiled model is compared as well.
"""

import argparse
import json
import tempfile
from typing import Optional, Sequence

import torch

from benchmarks.provenance import provenance
from data import build_dataloaders
from data.synthetic import make_lidc
from models import MoSE
from utils.evaluation.metrics import StreamingECE, ged_miou
from utils.labels import hard_labels
from utils.loss.ot_loss import OTLoss


def evaluate(model, x, y, v, autocast: bool, device: str) -> dict:
    model.eval()
    gen = torch.Generator(device=device).manual_seed(0)
    with torch.no_grad(), torch.autocast(device.split(":")[0], torch.bfloat16, enabled=autocast):
        out = model(x, y, generator=gen)
    pred, w = out["pred"].float(), out["weights"].float()
    ged, miou = ged_miou(hard_labels(pred), y, w, v)
    ece = StreamingECE(2, [1])
    ece.update(pred, w, y, v)
    return {"ged": ged.nanmean().item(), "miou": miou.mean().item(), "ece": ece.compute(),
            "pred": pred}


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """The command line (`argv`: the arguments after the script; default sys.argv)."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--compile", action="store_true")
    return p.parse_args(argv)


def main() -> None:
    args = parse_args()
    torch.manual_seed(0)
    root = tempfile.mkdtemp()
    make_lidc(root, n_train=256, n_val=16, n_test=32, size=128, seed=0)
    loaders = build_dataloaders("lidc", root, train_batch_size=args.batch, test_batch_size=32)
    model = MoSE(1, 2, [32, 64, 128, 192, 192, 192, 192], 1, 4, 4, True, False).to(args.device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-5)
    loss_fn = OTLoss("iou", 1.0, 0.5)
    step = 0
    while step < args.steps:
        for x, y, v in loaders["train"]:
            x, y, v = x.to(args.device), y.to(args.device), v.to(args.device)
            model.train()
            out = model(x, y)
            loss = loss_fn(y, out["pred"], out["weights"], v, (4, 4))[0]
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            if step >= args.steps:
                break
    x, y, v = (t.to(args.device) for t in next(iter(loaders["test"])))
    fp32 = evaluate(model, x, y, v, False, args.device)
    amp = evaluate(model, x, y, v, True, args.device)
    result = {"device": args.device, "train_steps": args.steps, "final_train_loss": loss.item(),
              "test_images": x.shape[0], "tf32_conv": torch.backends.cudnn.allow_tf32,
              "tf32_matmul": torch.backends.cuda.matmul.allow_tf32}
    for name, r in (("fp32", fp32), ("amp_bf16", amp)):
        result[name] = {k: r[k] for k in ("ged", "miou", "ece")}
    result["amp_max_abs_prob_diff"] = (amp["pred"] - fp32["pred"]).abs().max().item()
    if args.compile:
        comp = evaluate(torch.compile(model), x, y, v, False, args.device)
        result["compiled_fp32"] = {k: comp[k] for k in ("ged", "miou", "ece")}
        result["compile_max_abs_prob_diff"] = (comp["pred"] - fp32["pred"]).abs().max().item()
    result["provenance"] = provenance()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
