"""What is particular to each method, in one place: a `MethodSpec` per method, registered by
name; a config names one with `method=`.

A spec holds how the model is built from the settings, its training loss, what
`eval_sample_num` means for it, which settings apply to it, and the checks of those settings.
`utils.build` builds through it and `utils.config` derives and checks through it.

Built in: 'mose' (`models.mose.MoSE`, the OT loss), 'prob_unet' (Kohl et al. 2018,
`models.prob_unet.ProbUnet`, the negative ELBO) and 'ssn' (Monteiro et al. 2020,
`models.ssn.SSN`, the Monte-Carlo NLL). The baselines share the backbone (`num_filters`), the
data, the metrics and the protocol. Another method is one `register_method(MethodSpec(...))`
away (tests/test_new_dataset_and_method.py).

Standard library only at import: checking a config reads the specs before torch is loaded;
the builders import the models and losses when they are called.
"""

from dataclasses import dataclass
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

from data.registry import Registry
from data.specs import dataset_spec

Settings = Mapping[str, Any]

# MoSE's schedules and extensions, and the value that switches each off: a method whose
# `settings` do not name one gets that value, so that any MoSE config runs with --set method=...
SWITCHED_OFF: Dict[str, Any] = dict(gamma_scheduler_options=None, S_scheduler_options=None,
                                    G_scheduler_options=None, revive_experts=None,
                                    gate_refit_steps=0)


@dataclass(frozen=True)
class MethodSpec:
    """Everything particular to one method (module docstring).

    Attributes:
        name: the `method` setting that selects it.
        build_model: settings -> the model (an `nn.Module` whose forward returns `pred`
            (B, N, C, H, W), `weights` (B, N) and, with experts, `expert_probs` (B, K)).
        build_loss: settings -> the training loss (called through `utils.loss.objective`).
        eval_samples: the samples per image of an evaluation when `eval_sample_num` is None,
            uniform weights; None: the method's compact representation (MoSE: K·S samples
            weighted π_k / S). An int `eval_sample_num` always draws that many uniform samples.
        settings: the settings that apply to this method alone (`SWITCHED_OFF` ones it does not
            name are switched off).
        check: settings -> None, raising ValueError on a setting the method cannot run with.
    """

    name: str
    build_model: Callable[[Settings], Any]
    build_loss: Callable[[Settings], Any]
    eval_samples: Optional[int] = None
    settings: Tuple[str, ...] = ()
    check: Optional[Callable[[Settings], None]] = None

    def representation(self, eval_sample_num: Optional[int]) -> str:
        """'compact' or 'standard': how an evaluation with `eval_sample_num` samples."""
        return "compact" if eval_sample_num is None and self.eval_samples is None \
            else "standard"


_SPECS: Registry[MethodSpec] = Registry("method")
register_method = _SPECS.register  # a new method: register_method(MethodSpec(...))
method_names = _SPECS.names
method_spec = _SPECS.get


def backbone_options(settings: Settings) -> Dict[str, Any]:
    """The keyword arguments every built-in model takes from the settings."""
    s = settings
    return dict(input_channels=s["input_channels"], num_classes=s["n_classes"],
                num_filters=s["num_filters"], softmax=s["softmax"], masked_pred=s["masked_pred"],
                channels_last=s["channels_last"], amp=s["amp"])


# --- MoSE --------------------------------------------------------------------------------------

def _mose_model(s: Settings) -> Any:
    from models.mose import MoSE

    return MoSE(latent_dim=s["latent_dim"], num_expert=s["num_expert"],
                sample_per_mode=s["sample_per_mode"], eval_sample_num=s["eval_sample_num"],
                fast_head=s["fast_head"], compile_head=s["compile_head"],
                gate_input=s["gate_input"], gate_tta=s["gate_tta"],
                gate_views=dataset_spec(s["dataset"]).gate_views, **backbone_options(s))


def _mose_loss(s: Settings) -> Any:
    from utils.loss.ot_loss import OTLoss

    return OTLoss(cost_fn=s["cost_fn"], beta=s["beta"], gamma0=s["gamma0"], G0=s["G0"],
                  num_chunks=s["num_chunks"], coupling=s["coupling"])


def _check_exact_capacity(s: Settings) -> None:
    """The exact coupling places every annotation only where N·γ >= 1 (N = K·S samples of
    capacity γ); checked for the smallest γ and S the schedules can reach."""
    if s["coupling"] not in ("exact", "expert"):
        return
    gammas = [s["gamma0"], *(s["gamma_scheduler_options"] or {}).get("values", [])]
    sizes = [s["sample_per_mode"], *(s["S_scheduler_options"] or {}).get("values", [])]
    N, gamma = s["num_expert"] * min(sizes), min(gammas)
    if N * gamma < 1 - 1e-6:
        raise ValueError(
            f"coupling={s['coupling']!r} needs N·γ >= 1 so that every annotation can be placed: "
            f"N = num_expert·sample_per_mode = {N} with γ = {gamma:g} gives {N * gamma:g}; "
            f"use gamma0 and gamma values >= 1/{N}, more samples, or coupling='greedy'")


def _check_mose(s: Settings) -> None:
    """Experts for every binary code of the latent space, a cost that matches the output, the
    exact coupling's capacity, and the image gate under `gate_tta`."""
    if s["num_expert"] < 2 ** s["latent_dim"]:
        raise ValueError(
            f"num_expert={s['num_expert']} < 2**latent_dim={2 ** s['latent_dim']}: every binary "
            "code of the latent space needs an expert; raise num_expert or lower latent_dim")
    if (s["cost_fn"] == "iou") != s["softmax"]:
        raise ValueError(f"cost_fn={s['cost_fn']!r} needs softmax={s['cost_fn'] == 'iou'} "
                         "('iou' compares probabilities, 'ce' takes logits)")
    _check_exact_capacity(s)
    if s["gate_tta"] and s["gate_input"] != "image":
        raise ValueError("gate_tta averages the image gate over flipped views; it needs "
                         "gate_input='image' (with another gate set gate_tta=False)")


register_method(MethodSpec(
    name="mose", build_model=_mose_model, build_loss=_mose_loss, check=_check_mose,
    settings=("latent_dim", "num_expert", "sample_per_mode", "fast_head", "compile_head",
              "gate_input", "gate_tta", "gate_refit_steps", "cost_fn", "beta", "gamma0", "G0",
              "num_chunks", "coupling", "gamma_scheduler_options", "S_scheduler_options",
              "G_scheduler_options", "revive_experts")))


# --- the baselines: Probabilistic U-Net and Stochastic Segmentation Networks ------------------

BASELINE_EVAL_SAMPLES = 16  # the usual sampling protocol of the LIDC literature


def _prob_unet_model(s: Settings) -> Any:
    from models.prob_unet import ProbUnet

    return ProbUnet(latent_dim=s["prob_unet_latent_dim"],
                    eval_sample_num=s["eval_sample_num"] or BASELINE_EVAL_SAMPLES,
                    **backbone_options(s))


def _prob_unet_loss(s: Settings) -> Any:
    from utils.loss.elbo import ELBOLoss

    return ELBOLoss(beta=s["beta"], ignore_void=s["masked_pred"])


def _ssn_model(s: Settings) -> Any:
    from models.ssn import SSN

    return SSN(rank=s["ssn_rank"], mc_samples=s["ssn_mc_samples"],
               eval_sample_num=s["eval_sample_num"] or BASELINE_EVAL_SAMPLES,
               **backbone_options(s))


def _ssn_loss(s: Settings) -> Any:
    from utils.loss.ssn_nll import SSNLoss

    return SSNLoss(ignore_void=s["masked_pred"])


register_method(MethodSpec(
    name="prob_unet", build_model=_prob_unet_model, build_loss=_prob_unet_loss,
    eval_samples=BASELINE_EVAL_SAMPLES, settings=("prob_unet_latent_dim", "beta")))
register_method(MethodSpec(
    name="ssn", build_model=_ssn_model, build_loss=_ssn_loss,
    eval_samples=BASELINE_EVAL_SAMPLES, settings=("ssn_rank", "ssn_mc_samples")))
