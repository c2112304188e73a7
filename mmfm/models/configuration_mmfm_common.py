"""Fields, checks and size presets shared by every mmfm encoder configuration, and the base of every
objective's hyperparameters (`MMFMObjectiveConfig`).

Part of the exportable model folder: imports only transformers and its siblings.
"""

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from transformers import PreTrainedConfig
from transformers.activations import ACT2FN

# Transformer sizes shared by every modality; modality configs add their own preset fields on top.
ENCODER_PRESETS: dict[str, dict[str, Any]] = {
    "tiny": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64},
    "small": {
        "hidden_size": 384,
        "num_hidden_layers": 12,
        "num_attention_heads": 6,
        "intermediate_size": 1536,
    },
    "base": {
        "hidden_size": 768,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "intermediate_size": 3072,
    },
}


def require_positive_int(config: PreTrainedConfig, *names: str) -> None:
    """Raise `ValueError` naming the field unless each named field is a positive `int`."""
    for name in names:
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ValueError(f"{type(config).__name__}.{name} must be a positive integer, got {value!r}.")


def require_choice(config: PreTrainedConfig, name: str, choices: tuple[str, ...]) -> None:
    """Raise `ValueError` naming the field unless it is one of `choices`."""
    value = getattr(config, name)
    if value not in choices:
        raise ValueError(f"{type(config).__name__}.{name} must be one of {choices}, got {value!r}.")


def require_probability(config: PreTrainedConfig, *names: str) -> None:
    """Raise `ValueError` unless each named field is a number in [0, 1)."""
    for name in names:
        value = getattr(config, name)
        if not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
            raise ValueError(f"{type(config).__name__}.{name} must be in [0, 1), got {value!r}.")


def require_open_fraction(config: PreTrainedConfig, *names: str) -> None:
    """Raise `ValueError` unless each named field (a mask ratio or corruption rate) is strictly in (0, 1)."""
    for name in names:
        value = getattr(config, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < value < 1.0:
            raise ValueError(
                f"{type(config).__name__}.{name} must be strictly between 0 and 1, got {value!r}."
            )


def check_decoder_sizes(config: PreTrainedConfig) -> None:
    """Check the `decoder_*` fields of a config whose pretraining head has a transformer decoder."""
    require_positive_int(
        config,
        "decoder_hidden_size",
        "decoder_num_hidden_layers",
        "decoder_num_attention_heads",
        "decoder_intermediate_size",
    )
    if config.decoder_hidden_size % config.decoder_num_attention_heads:
        raise ValueError(
            f"{type(config).__name__}.decoder_hidden_size ({config.decoder_hidden_size}) must be divisible by "
            f"decoder_num_attention_heads ({config.decoder_num_attention_heads}): the encoder and decoder "
            "sizes cannot meet otherwise."
        )


class ExportableConfigMixin:
    """Makes a saved folder loadable without mmfm (`trust_remote_code=True`).

    `auto_map_classes` lists the Auto classes every model of the type has (config, encoder, downstream
    heads); it is written as `auto_map` on each save, because transformers alone records only the class that
    happened to be saved. Entries for other Auto classes, which an objective's model sets for itself when it
    is saved (`AutoModelForPreTraining`, `AutoModelForMaskedLM`, ...), are kept, and so is an entry naming
    the saved class itself (`config.architectures`): when two heads share an Auto class (time-series
    classification and regression both answer `AutoModelForSequenceClassification`), the saved one is
    what its folder loads.
    """

    _auto_class: ClassVar[str | None] = "AutoConfig"
    auto_map_classes: ClassVar[dict[str, str]] = {}

    def save_pretrained(self, save_directory, push_to_hub: bool = False, **kwargs):
        current = getattr(self, "auto_map", None) or {}
        saved_class = (getattr(self, "architectures", None) or [None])[0]
        kept = {
            k: v
            for k, v in current.items()
            if k not in self.auto_map_classes or (saved_class and v.rsplit(".", 1)[-1] == saved_class)
        }
        self.auto_map = {**self.auto_map_classes, **kept}
        return super().save_pretrained(save_directory, push_to_hub=push_to_hub, **kwargs)


class MMFMEncoderConfig(ExportableConfigMixin, PreTrainedConfig):
    r"""Transformer fields common to all mmfm encoders (pre-norm blocks, fused QKV).

    Args:
        hidden_size: width D of every token embedding.
        num_hidden_layers: number of transformer blocks.
        num_attention_heads: heads per block; must divide `hidden_size`.
        intermediate_size: width of the MLP inside each block.
        hidden_act: MLP activation, any key of `transformers.activations.ACT2FN`.
        hidden_dropout_prob: dropout on the residual branches.
        attention_probs_dropout_prob: dropout on attention weights.
        initializer_range: standard deviation of the truncated-normal weight init.
        layer_norm_eps: epsilon of every LayerNorm.
        qkv_bias: whether the fused query/key/value projection has a bias.
        validate_inputs: check input values (NaN/Inf, index ranges) on every forward. These checks read
            tensor values, which costs a device synchronisation on GPU; turn off for maximum speed once
            the data pipeline is trusted. Shape checks always run.
        pretraining_objective: the objective this encoder was (or is being) pretrained with (`"mae"`,
            `"mlm"`, ...), recorded by the objective's model; None for an encoder never pretrained by mmfm.
            A model of another objective refuses the configuration, naming both.
        pretraining_config: that objective's hyperparameters (its `MMFMObjectiveConfig` as a dict), so
            continued pretraining resumes with the same settings.
        classifier_dropout: dropout before the classifier of the downstream heads; None uses
            `hidden_dropout_prob` (as BERT). Their labels come from transformers' own fields: `num_labels`,
            `id2label`/`label2id` and `problem_type`.
    """

    # The modality token of the encoder (`text`, `vision`, ...): the key of this config in `MMFMConfig`.
    modality: ClassVar[str] = ""
    # Modality-specific fields merged on top of ENCODER_PRESETS by `from_preset`.
    modality_presets: ClassVar[dict[str, dict[str, Any]]] = {}

    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float = 0.0
    attention_probs_dropout_prob: float = 0.0
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-6
    qkv_bias: bool = True
    validate_inputs: bool = True
    pretraining_objective: str | None = None
    pretraining_config: dict[str, Any] | None = None
    classifier_dropout: float | None = None

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        self.check_consistency()

    def check_consistency(self) -> None:
        """Raise `ValueError` naming the field when the configuration cannot build a model."""
        require_positive_int(
            self, "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size"
        )
        if self.hidden_size % self.num_attention_heads != 0:
            raise ValueError(
                f"{type(self).__name__}.hidden_size ({self.hidden_size}) must be divisible by "
                f"num_attention_heads ({self.num_attention_heads}); e.g. use num_attention_heads="
                f"{_largest_divisor_at_most(self.hidden_size, self.num_attention_heads)}."
            )
        if self.hidden_act not in ACT2FN:
            raise ValueError(
                f"{type(self).__name__}.hidden_act must be one of {sorted(ACT2FN)}, got {self.hidden_act!r}."
            )
        require_probability(self, "hidden_dropout_prob", "attention_probs_dropout_prob")
        if self.classifier_dropout is not None:
            require_probability(self, "classifier_dropout")
        if self.pretraining_objective is not None and not isinstance(self.pretraining_objective, str):
            raise ValueError(
                f"{type(self).__name__}.pretraining_objective must be an objective name or None, got "
                f"{self.pretraining_objective!r}."
            )
        if self.pretraining_config is not None and not isinstance(self.pretraining_config, Mapping):
            raise ValueError(
                f"{type(self).__name__}.pretraining_config must be a mapping of the objective's fields or None, "
                f"got {self.pretraining_config!r}."
            )

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> "MMFMEncoderConfig":
        """Build a configuration from a named size preset (`tiny`, `small`, `base`), then `overrides`."""
        if name not in ENCODER_PRESETS:
            raise ValueError(f"Unknown preset {name!r}; available presets: {sorted(ENCODER_PRESETS)}.")
        fields = {**ENCODER_PRESETS[name], **cls.modality_presets.get(name, {}), **overrides}
        return cls(**fields)


def _largest_divisor_at_most(n: int, limit: int) -> int:
    return max(d for d in range(1, max(1, limit) + 1) if n % d == 0)


@dataclasses.dataclass
class MMFMObjectiveConfig:
    """Hyperparameters one pretraining objective owns (a dataclass per objective, next to its model).

    They are stored in the encoder configuration's `pretraining_config` dict, so a saved pretraining model
    records how it was trained; the encoder's own fields stay architecture only. Subclasses declare
    typed fields with defaults and validate them in `check`; `presets` holds their sizes for the encoder
    presets (`tiny`, `small`, ...), which the training recipe applies under the run's own values.
    """

    presets: ClassVar[dict[str, dict[str, Any]]] = {}

    def check(self) -> None:
        """Raise `ValueError` naming the field when a value cannot be trained with (subclasses add checks)."""

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> "MMFMObjectiveConfig":
        """Build from a mapping: unknown fields and wrong types are refused, naming the valid fields."""
        values = dict(values or {})
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise ValueError(f"Unknown {cls.__name__} field(s) {unknown}; valid fields: {names}.")
        hints = typing.get_type_hints(cls)
        for name, value in values.items():
            values[name] = _coerce(f"{cls.__name__}.{name}", hints[name], value)
        objective = cls(**values)
        objective.check()
        return objective

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _coerce(where: str, hint: Any, value: Any) -> Any:
    """`value` as type `hint` (bool, int, float, str, a Literal or an optional of those), else `ValueError`."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        return _coerce(where, next(a for a in args if a is not type(None)), value)
    if origin is Literal:
        if value not in args:
            raise ValueError(f"{where} must be one of {list(args)}, got {value!r}.")
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where} must be a finite number, got {value!r}.")
    if not isinstance(value, hint) or (hint in (int, float) and isinstance(value, bool)):
        raise ValueError(f"{where} must be a {hint.__name__}, got {value!r} ({type(value).__name__}).")
    return value


__all__ = [
    "ENCODER_PRESETS",
    "ExportableConfigMixin",
    "MMFMEncoderConfig",
    "MMFMObjectiveConfig",
    "check_decoder_sizes",
    "require_choice",
    "require_open_fraction",
    "require_positive_int",
    "require_probability",
]
