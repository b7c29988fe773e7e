"""One of our configs as the arguments of the authors' constructors and engine settings."""

from typing import Any, Dict

from utils.config.config import Config


def model_and_loss(cfg: Config) -> Dict[str, Any]:
    """Keyword arguments of their `MoSE` (`model`) and `OT_loss` (`loss`) for the config.

    Their gate reads the encoder level `gating_feature_level` (default 6, the bottleneck of
    the paper's 7-level U-Net); the bottleneck of any depth is the last level.
    """
    model = dict(input_channels=cfg.input_channels, num_classes=cfg.n_classes,
                 num_filters=list(cfg.num_filters), latent_dim=cfg.latent_dim,
                 num_expert=cfg.num_expert, sample_per_mode=cfg.sample_per_mode,
                 gating_feature_level=len(cfg.num_filters) - 1, softmax=cfg.softmax,
                 masked_pred=cfg.masked_pred, eval_class_ids=cfg.eval_class_ids,
                 eval_sample_num=None)
    loss = dict(cost_fn=cfg.cost_fn, beta=cfg.beta, gamma0=cfg.gamma0, G0=cfg.G0,
                num_chunks=cfg.num_chunks)
    return dict(model=model, loss=loss)


def training_recipe(cfg: Config) -> Dict[str, Any]:
    """Their engine's settings for the config's recipe: Adam's learning rate, their plateau
    rule's options, batch sizes, epochs, and γ's fixed moves.

    Raises:
        ValueError: the config's recipe is one their engine does not have (a learning-rate
            schedule other than the plateau rule, a γ plateau rule, an S or G schedule).
    """
    gamma = cfg.gamma_scheduler_options or {}
    if cfg.lr_schedule != "plateau" or "patience" in gamma or cfg.S_scheduler_options or \
            cfg.G_scheduler_options:
        raise ValueError("the authors' engine is driven with the plateau learning-rate rule and "
                         "γ at fixed epochs only")
    return dict(lr=cfg.lr, scheduler_options=dict(cfg.scheduler_options), epochs=cfg.epochs,
                train_batch_size=cfg.train_batch_size, val_batch_size=cfg.val_batch_size,
                test_batch_size=cfg.test_batch_size,
                gamma_milestones=list(gamma.get("milestones", [])),
                gamma_values=list(gamma.get("values", [])))
