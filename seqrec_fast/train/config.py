"""Run configuration: dataclasses loaded from YAML, then overridden by ``--key value`` flags.

Keys are the field names (``hidden_size``; ``--hidden-size`` on the command line). Model fields
may be given at the top level or under a ``model:`` section; ``model: NAME`` picks the backbone.
Every value is checked against its field's type and choices, and an error names the key."""

from __future__ import annotations

import dataclasses
import difflib
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..models import ModelConfig

# Kept free of torch imports: the command line builds its options from these dataclasses.
MODEL_NAMES = ("bert4rec", "gru4rec", "nextitnet", "sasrec", "stosa")  # models.registry.MODELS
LOSS_NAMES = ("ce", "bce", "sampled_softmax", "gbce", "stosa")  # train.losses.LOSSES
TIE_POLICIES = ("pessimistic", "expected")  # train.metrics
METRIC_NAMES = ("hr", "recall", "ndcg", "mrr")  # train.metrics
DEFAULT_CUTOFFS = (5, 10, 20)  # train.metrics


class ConfigError(ValueError):
    """A configuration value or key is invalid; the message names the key."""


def _choices(*values: str) -> dict:
    return {"choices": values}


VALID_METRICS = tuple(f"{m}@{k}" for m in METRIC_NAMES for k in DEFAULT_CUTOFFS) + ("auc",)


@dataclass
class TrainConfig:
    """Everything a training run needs besides the data itself."""

    data: str = ""  # prepared dataset dir, raw interactions file/dir, or synthetic:PRESET
    out: str = ""  # run directory
    model: ModelConfig = field(default_factory=ModelConfig)
    # loss
    loss: str = field(default="", metadata=_choices("", *LOSS_NAMES))  # "" -> the model's default
    fused_ce: bool = True  # chunked full-softmax CE that never materialises all logits
    n_negatives: int = -1  # sampled negatives per position; -1 -> the loss's default
    negative_sampler: str = field(default="uniform", metadata=_choices("uniform", "popularity"))
    gbce_t: float = 0.75  # gBCE calibration
    pvn_weight: float = 0.005  # STOSA's positive-vs-negative margin weight
    # optimisation
    optimizer: str = field(default="adam", metadata=_choices("adam", "adamw"))
    lr: float = 1e-3
    weight_decay: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.999
    clip_grad_norm: float = 5.0  # 0 disables clipping
    scheduler: str = field(default="constant", metadata=_choices("constant", "cosine", "linear"))
    warmup_steps: int = 0
    # Validation, early stopping and test score an exponential moving average of the weights with
    # this decay per step (train.weight_average); 0 scores the trained weights themselves.
    ema_decay: float = 0.0
    epochs: int = 200
    # Targets per optimizer step (next items, or masked positions for BERT4Rec), global (split
    # across ranks under torchrun): each batch holds as many windows as make about this many,
    # so an epoch takes RecBole's number of steps (its batch is 256 prefixes, one target each)
    # whatever the windows.
    batch_size: int = 256
    # Training windows (data.TrainLoaderConfig): "stride" ends a window of max_len items every
    # `stride` items with targets on its last `stride` positions, so each target sees a long
    # context as in evaluation; "sliding" cuts disjoint windows; "last" keeps one per user;
    # "" -> the backbone's default (``default_window``: strided for SASRec, whose final block
    # then runs at the target positions only; see README, Training windows).
    window: str = field(default="", metadata=_choices("", "sliding", "stride", "last"))
    stride: int = 5  # window="stride" only; capped at max_len
    amp: bool = True  # bf16 autocast on GPU (ignored on CPU)
    # evaluation and model selection
    eval_every: int = 1  # epochs between validation runs
    patience: int = 10  # validation runs without improvement before stopping; 0 never stops
    # Early stopping never ends a run before this epoch: BERT4Rec's cloze training sits on a
    # validation plateau for its first ~15 epochs on ml-100k, long enough to exhaust patience 10.
    min_epochs: int = 0
    metric: str = field(default="ndcg@10", metadata=_choices(*VALID_METRICS))
    filter_history: bool = True  # remove the user's past items from the ranking
    ties: str = field(default="pessimistic", metadata=_choices(*TIE_POLICIES))
    eval_negatives: int = 0  # >0: sampled metrics against that many fixed negatives (labelled)
    eval_sampler: str = field(default="uniform", metadata=_choices("uniform", "popularity"))
    eval_batch_size: int = 512
    # machinery
    seed: int = 42
    device: str = field(default="auto", metadata=_choices("auto", "cpu", "cuda"))
    loader_threads: int = 1
    threads: int = 0  # torch intra-op threads; 0 keeps torch's default (one per core)
    checkpoint_every_steps: int = 0  # extra mid-epoch checkpoints (0: at the end of each epoch only)
    progress: bool = True  # tqdm bars on stderr

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


_MODEL_CHOICES = {"name": MODEL_NAMES, "residual": ("standard", "scaled")}


def _field_types(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _fields(cls) -> dict[str, dataclasses.Field]:
    return {f.name: f for f in dataclasses.fields(cls)}


def option_names() -> list[str]:
    """Every settable key (model fields included), sorted."""
    keys = set(_fields(TrainConfig)) | set(_fields(ModelConfig))
    return sorted(keys)


def _type_name(annotation) -> str:
    if typing.get_origin(annotation) is tuple:
        return "a list of integers"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}[annotation]


def _non_negative(value) -> bool:
    return value >= 0


def _positive(value) -> bool:
    return value > 0


def _fraction(value) -> bool:
    return 0 <= value < 1


# What each numeric key allows, and how an error says it. Every key here is checked when it is
# parsed (coerce) and again on the whole config (validate).
_RANGES: dict[str, tuple[Any, str]] = {
    **{key: (_positive, "a positive integer") for key in (
        "epochs", "batch_size", "eval_every", "eval_batch_size", "loader_threads", "stride",
        "hidden_size", "max_len", "kernel_size")},
    **{key: (lambda v: v == -1 or v > 0, "-1 (the backbone's default) or a positive integer")
       for key in ("num_layers", "num_heads", "inner_size")},
    **{key: (_non_negative, "a non-negative integer") for key in (
        "min_epochs", "patience", "warmup_steps", "eval_negatives", "seed", "threads", "checkpoint_every_steps")},
    **{key: (_non_negative, "a non-negative number") for key in ("weight_decay", "clip_grad_norm", "pvn_weight")},
    **{key: (_fraction, "a number in [0, 1)") for key in ("beta1", "beta2", "ema_decay")},
    **{key: (lambda v: v == -1 or 0 <= v < 1, "-1 (the backbone's default) or a number in [0, 1)")
       for key in ("dropout", "attn_dropout")},
    "lr": (_positive, "a number > 0"),
    **{key: (lambda v: 0 <= v <= 1, "a number in [0, 1]") for key in ("gbce_t", "mask_last_ratio")},
    "mask_prob": (lambda v: 0 < v < 1, "a number in (0, 1)"),
    "n_negatives": (lambda v: v == -1 or v >= 0, "-1 (the loss's default) or an integer >= 0"),
    "dilations": (lambda v: all(d > 0 for d in v), "positive integers"),
}


def _check_range(key: str, value: Any) -> None:
    allowed, expected = _RANGES.get(key, (None, ""))
    if allowed is not None and not allowed(value):
        raise ConfigError(f"config key {key!r}: expected {expected}, got {value}")


def coerce(key: str, value: Any, annotation) -> Any:
    """Convert a YAML value or a command-line string to the field's type, checked against the
    key's range (numbers are finite), or raise ConfigError."""
    converted = _convert(key, value, annotation)
    _check_range(key, converted)
    return converted


def _convert(key: str, value: Any, annotation) -> Any:
    def fail(expected: str | None = None) -> typing.NoReturn:
        raise ConfigError(f"config key {key!r}: expected {expected or _type_name(annotation)}, got {value!r}")

    if typing.get_origin(annotation) is tuple:
        items = value.replace(",", " ").split() if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)) or not items:
            fail()
        return tuple(_convert(key, item, int) for item in items)
    if annotation is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "yes", "1", "on", "false", "no", "0", "off"):
            return value.strip().lower() in ("true", "yes", "1", "on")
        fail()
    if annotation is int:
        if isinstance(value, bool):
            fail()
        if isinstance(value, int):
            return value
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                fail()
        fail()
    if annotation is float:
        if isinstance(value, bool):
            fail()
        if isinstance(value, (int, float)):
            number = float(value)
        elif isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                fail()
        else:
            fail()
        if not math.isfinite(number):
            fail("a finite number")
        return number
    if annotation is str:
        if isinstance(value, (str, Path)):
            return str(value)
        fail()
    raise ConfigError(f"config key {key!r}: unsupported type {annotation}")


def _unknown_key(key: str) -> ConfigError:
    valid = option_names()
    close = difflib.get_close_matches(key, valid, n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    return ConfigError(f"unknown option {key!r}{hint}; valid options: {', '.join(valid)}")


def _check_choice(key: str, value: Any, choices) -> None:
    if choices and value not in choices:
        shown = ", ".join(repr(c) if c == "" else c for c in choices)
        raise ConfigError(f"config key {key!r}: unknown value {value!r}; valid values: {shown}")


def set_option(config: TrainConfig, key: str, value: Any) -> None:
    """Set one key (top-level or model field) from a YAML value or a command-line string."""
    key = key.replace("-", "_")
    if key == "model":
        if isinstance(value, dict):
            for sub_key, sub_value in value.items():
                set_option(config, sub_key if sub_key != "name" else "model_name", sub_value)
            return
        key = "model_name"
    train_fields, model_fields = _fields(TrainConfig), _fields(ModelConfig)
    if key in train_fields and key != "model":
        annotation = _field_types(TrainConfig)[key]
        converted = coerce(key, value, annotation)
        _check_choice(key, converted, train_fields[key].metadata.get("choices"))
        setattr(config, key, converted)
        return
    model_key = "name" if key == "model_name" else key
    if model_key in model_fields:
        shown = "model" if model_key == "name" else key
        converted = coerce(shown, value, _field_types(ModelConfig)[model_key])
        _check_choice(shown, converted, _MODEL_CHOICES.get(model_key))
        setattr(config.model, model_key, converted)
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
                 default_window: str = "") -> TrainConfig:
    """Defaults, then the YAML file, then the overrides; validated. A window that neither names
    becomes ``default_window``, or else the backbone's own."""
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

    config.model = resolve_defaults(config.model)  # the run's config.yaml shows the values used
    config.window = config.window or default_window or config.resolved_window()
    validate(config)
    return config


def validate(config: TrainConfig) -> None:
    for section in (config, config.model):
        for key, value in vars(section).items():
            if isinstance(value, float) and not math.isfinite(value):
                raise ConfigError(f"config key {key!r}: expected a finite number, got {value}")
            _check_range(key, value)
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
