"""Run configuration: dataclasses loaded from YAML, then overridden by ``--key value`` flags.

Keys are the field names (``hidden_size``; ``--hidden-size`` on the command line). Model fields
may be given at the top level or under a ``model:`` section; ``model: NAME`` picks the backbone.
Every value is checked against its field's type, range and choices (``seqrec_fast.options``),
and an error names the key."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..models import ModelConfig
from ..models.config import MODEL_NAMES  # noqa: F401  (re-exported: the names the CLI lists)
from ..options import (FRACTION, NON_NEGATIVE, NON_NEGATIVE_NUMBER, POSITIVE, POSITIVE_NUMBER, PROBABILITY, Check,
                       ConfigError, check_value, fields, option, parse_value, unknown_key)

# Kept free of torch imports: the command line builds its options from these dataclasses.
LOSS_NAMES = ("ce", "bce", "sampled_softmax", "gbce", "stosa")  # train.losses.LOSSES
TIE_POLICIES = ("pessimistic", "expected")  # train.metrics
METRIC_NAMES = ("hr", "recall", "ndcg", "mrr")  # train.metrics
DEFAULT_CUTOFFS = (5, 10, 20)  # train.metrics


_LOSS_DEFAULT = Check(lambda v: v == -1 or v >= 0, "-1 (the loss's default) or an integer >= 0")
FAST_DEV_RUN_HELP = ("check a setup in seconds: one epoch of a few batches, then validation and test, with the "
                     "JSON and run directory of a real run")
# The sampled negatives' proposal, in training and in sampled evaluation.
SAMPLERS = ("uniform", "popularity")
VALID_METRICS = tuple(f"{m}@{k}" for m in METRIC_NAMES for k in DEFAULT_CUTOFFS) + ("auc",)


@dataclass
class TrainConfig:
    """Everything a training run needs besides the data itself."""

    data: str = option("", help="prepared dataset directory, raw interactions file or directory, or synthetic:PRESET")
    out: str = option("", help="run directory")
    model: ModelConfig = field(default_factory=ModelConfig)
    # loss
    loss: str = option("", choices=("", *LOSS_NAMES), help='training loss; "" takes the backbone\'s default')
    fused_ce: bool = option(True, help="chunked full-softmax cross-entropy that never materialises all logits")
    n_negatives: int = option(-1, check=_LOSS_DEFAULT,
                              help="sampled negatives per position; -1 takes the loss's default")
    negative_sampler: str = option("uniform", choices=SAMPLERS, help="how training negatives are drawn")
    gbce_t: float = option(0.75, check=PROBABILITY, help="gBCE's calibration t")
    pvn_weight: float = option(0.005, check=NON_NEGATIVE_NUMBER, help="STOSA's positive-vs-negative margin weight")
    # optimisation
    optimizer: str = option("adam", choices=("adam", "adamw"), help="optimizer")
    lr: float = option(1e-3, check=POSITIVE_NUMBER, help="learning rate")
    weight_decay: float = option(0.0, check=NON_NEGATIVE_NUMBER, help="weight decay (decoupled with adamw)")
    beta1: float = option(0.9, check=FRACTION, help="Adam's beta1")
    beta2: float = option(0.999, check=FRACTION, help="Adam's beta2")
    clip_grad_norm: float = option(5.0, check=NON_NEGATIVE_NUMBER, help="gradient norm clipping; 0 disables it")
    scheduler: str = option("constant", choices=("constant", "cosine", "linear"),
                            help="learning-rate schedule after the warm-up")
    warmup_steps: int = option(0, check=NON_NEGATIVE, help="optimizer steps of linear learning-rate warm-up")
    ema_decay: float = option(0.0, check=FRACTION,
                              help="validation, early stopping and test score a moving average of the weights with "
                                   "this decay per step; 0 scores the trained weights")
    epochs: int = option(200, check=POSITIVE, help="epoch budget")
    # Targets, not sequences, so that an epoch takes RecBole's number of steps (its batch is 256
    # prefixes, one target each) whatever the windows.
    batch_size: int = option(256, check=POSITIVE,
                             help="targets per optimizer step (next items, or BERT4Rec's masked positions), global "
                                  "under torchrun; a batch holds as many windows as make about this many")
    # Strided windows give each target a long context, as in evaluation; SASRec's final block
    # then runs at the target positions only.
    window: str = option("", choices=("", "sliding", "stride", "last"),
                         help='training windows: "stride" ends a max_len window every `stride` items with targets '
                              'on its last `stride` positions, "sliding" cuts disjoint windows, "last" keeps one per '
                              'user; "" takes the backbone\'s default')
    stride: int = option(5, check=POSITIVE, help="window stride (window stride only; capped at max_len)")
    amp: bool = option(True, help="bf16 autocast on GPU (ignored on CPU)")
    # evaluation and model selection
    eval_every: int = option(1, check=POSITIVE, help="epochs between validation runs")
    patience: int = option(10, check=NON_NEGATIVE,
                           help="validation runs without improvement before early stopping; 0 never stops")
    # BERT4Rec's cloze training sits on a validation plateau for its first epochs, long enough to
    # exhaust the patience.
    min_epochs: int = option(0, check=NON_NEGATIVE, help="early stopping never ends a run before this epoch")
    metric: str = option("ndcg@10", choices=VALID_METRICS, help="validation metric for model selection")
    filter_history: bool = option(True, help="remove the user's past items from the ranking")
    ties: str = option("pessimistic", choices=TIE_POLICIES,
                       help="rank of a target tied with other items: below them all, or their expected rank")
    eval_negatives: int = option(0, check=NON_NEGATIVE,
                                 help="0 ranks all items; N > 0 gives sampled metrics against N fixed negatives "
                                      "(labelled as such)")
    eval_sampler: str = option("uniform", choices=SAMPLERS, help="how evaluation negatives are drawn")
    eval_batch_size: int = option(512, check=POSITIVE, help="users per evaluation batch")
    # machinery
    seed: int = option(42, check=NON_NEGATIVE, help="seed of the weights, batches and negatives")
    device: str = option("auto", choices=("auto", "cpu", "cuda"), help="auto uses CUDA when available")
    loader_threads: int = option(1, check=POSITIVE, help="threads of the Rust loader")
    threads: int = option(0, check=NON_NEGATIVE, help="torch intra-op threads; 0 keeps torch's default")
    checkpoint_every_steps: int = option(0, check=NON_NEGATIVE,
                                         help="extra mid-epoch checkpoints; 0 checkpoints at the end of each epoch only")
    progress: bool = option(True, help="tqdm progress bars on stderr")
    fast_dev_run: bool = option(False, help=FAST_DEV_RUN_HELP)

    def resolved_loss(self) -> str:
        from ..models import MODELS

        return self.loss or MODELS[self.model.name].default_loss

    def resolved_negatives(self) -> int:
        from .losses import LOSSES

        return LOSSES[self.resolved_loss()].default_negatives if self.n_negatives < 0 else self.n_negatives

    def resolved_window(self) -> str:
        from ..models import MODELS

        return self.window or MODELS[self.model.name].default_window

    def loader_stride(self) -> int | None:
        """The loader's `stride` option: set for window "stride" only, at most max_len."""
        return min(self.stride, self.model.max_len) if self.resolved_window() == "stride" else None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def option_names() -> list[str]:
    """Every settable key (model fields included), sorted."""
    return sorted(set(fields(TrainConfig)) | set(fields(ModelConfig)))


def _unknown_key(key: str) -> ConfigError:
    return unknown_key(key, option_names())


def set_option(config: TrainConfig, key: str, value: Any) -> None:
    """Set one key (top-level or model field) from a YAML value or a command-line string."""
    key = key.replace("-", "_")
    if key == "model":
        if isinstance(value, dict):
            for sub_key, sub_value in value.items():
                set_option(config, sub_key if sub_key != "name" else "model_name", sub_value)
            return
        key = "model_name"
    if key in fields(TrainConfig) and key != "model":
        setattr(config, key, parse_value(TrainConfig, key, value))
        return
    model_key = "name" if key == "model_name" else key
    if model_key in fields(ModelConfig):
        shown = "model" if model_key == "name" else key
        setattr(config.model, model_key, parse_value(ModelConfig, model_key, value, shown))
        return
    raise _unknown_key(key)


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        loaded = yaml.safe_load(path.read_text())
    except OSError as error:
        raise ConfigError(f"cannot read config file {path}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: expected a mapping of keys to values at the top level")
    return loaded


def build_config(yaml_path: str | Path | None = None, overrides: dict[str, Any] | None = None, *,
                 default_window: str = "", model_defaults: dict[str, Any] | None = None) -> TrainConfig:
    """Defaults, then the YAML file, then the overrides; validated. A window that neither names
    becomes ``default_window``, or else the backbone's own; a model field that neither sets takes
    its value from ``model_defaults`` (a search's), or else from the backbone's defaults."""
    config = TrainConfig()
    if yaml_path is not None:
        for key, value in load_yaml(yaml_path).items():
            try:
                set_option(config, str(key), value)
            except ConfigError as error:
                raise ConfigError(f"{yaml_path}: {error}") from None
    for key, value in (overrides or {}).items():
        set_option(config, key, value)
    from ..models import resolve_defaults

    model_defaults = model_defaults or {}
    config.model = dataclasses.replace(config.model, **{name: model_defaults[name]
                                                        for name in config.model.unset_fields(model_defaults)})
    config.model = resolve_defaults(config.model)  # the run's config.yaml shows the values used
    config.window = config.window or default_window or config.resolved_window()
    validate(config)
    return config


def validate(config: TrainConfig) -> None:
    for section in (config, config.model):
        for key, field_ in fields(type(section)).items():
            if key != "model":
                check_value("model" if section is config.model and key == "name" else key, getattr(section, key), field_)
    if config.model.hidden_size % config.model.num_heads:
        raise ConfigError(f"config keys 'hidden_size' ({config.model.hidden_size}) and 'num_heads' "
                          f"({config.model.num_heads}): hidden_size must be divisible by num_heads")
    from .losses import LOSSES

    loss = config.resolved_loss()
    if loss == "stosa" and config.model.name != "stosa":
        raise ConfigError(f"config key 'loss': 'stosa' works with model stosa only, not {config.model.name}")
    if LOSSES[loss].default_negatives and config.resolved_negatives() < 1:
        raise ConfigError(f"config key 'n_negatives': loss {loss!r} needs at least 1 sampled negative")


def stored_dict(config: TrainConfig) -> dict[str, Any]:
    """The configuration as a run stores it (config.yaml, checkpoints): without ``out``, since a
    run directory is wherever the user names it and a copy must not write into the original."""
    data = config.to_dict()
    del data["out"]
    data["model"]["dilations"] = list(data["model"]["dilations"])
    return data


def to_yaml(config: TrainConfig) -> str:
    return yaml.safe_dump(stored_dict(config), sort_keys=False)


def from_resolved_yaml(path: str | Path) -> TrainConfig:
    """Load a run's resolved config.yaml (as written by :func:`to_yaml`)."""
    return build_config(path)
