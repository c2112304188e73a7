"""PEFT defaults for mmfm models: which layers an adapter targets, and how each model is fine-tuned with one.

peft knows default `target_modules` only for the model types it lists (`bert`, `vit`, ...); for any other it
raises "Please specify `target_modules`". `register_peft_defaults()` (run by `import mmfm`) adds every mmfm
model type, so `get_peft_model(model, LoraConfig(task_type=...))` works without naming layers:

- LoRA (and DoRA, `LoraConfig(use_dora=True)`, which reads LoRA's table), LoHa and LoKr adapt the four linear
  layers of every transformer block of the encoder(s): attention `qkv` and `out_proj`, MLP `fc1` and `fc2`
  (adapting all of a block's linear layers beats attention-only adapters, QLoRA, Dettmers et al., 2023). The
  names are one anchored regex (`TRANSFORMER_BLOCK_LINEARS`), so the graph encoder's GIN message-passing MLPs
  (`embeddings.message_passing.<i>.conv.mlp.fc1/fc2`) and the decoders of pretraining heads (MAE, DropPos)
  are left alone: they are not transformer blocks of the encoder being fine-tuned.
- (IA)^3 (Liu et al., 2022) rescales the fused `qkv` output (keys and values, as the paper, and queries,
  which the fused layer cannot leave out) and the input of `fc2`, the feed-forward layer. peft reads these
  defaults as module-name suffixes only (never a regex), so on the graph encoder `fc2` also picks the GIN
  MLPs' output layers: they are feed-forward layers of the encoder too, and an (IA)^3 vector starts as the
  identity, so this adds a few scales rather than changing the model (pass `target_modules` to avoid it).

It also lets `AutoPeftModel.from_pretrained(adapter)` rebuild mmfm models: an adapter saved without a
`task_type` records its base class's module (`mmfm.models.modeling_mmfm_<modality>`), which peft imports only
from packages on its import allowlist (`peft.auto.get_default_import_allowlist`: transformers, diffusers,
...). mmfm adds `mmfm.models` to that default. The allowlist exists so that an adapter file cannot make
peft import an arbitrary installed package; `mmfm.models` is already imported in any process where this runs
and imports nothing on its own, so allowing it opens nothing new. Adapters with a `task_type` (text heads)
never consult the allowlist: peft loads them through the Auto class mmfm registers.

`PEFT_TASKS` says, per model class, the `task_type`, the `modules_to_save` (the head's new layers, trained in
full) and the `AutoPeftModel*` class that reloads the adapter; `peft_task(model)` looks a model up.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from .models import ENCODER_CLASSES, HEAD_CLASSES, MMFMConfig

logger = logging.getLogger(__name__)

# Linear layers of the encoder's transformer blocks: in a bare encoder (`transformer.layers.0.attention.qkv`),
# a head or pretraining model (`encoder.transformer...`) and the composite (`encoders.<modality>.transformer...`).
_BLOCK = r"(?:encoder\.|encoders\.[a-z]+\.)?transformer\.layers\.\d+\."
TRANSFORMER_BLOCK_LINEARS = _BLOCK + r"(?:attention\.(?:qkv|out_proj)|mlp\.(?:fc1|fc2))"
# peft turns its (IA)^3 defaults into a set of module-name suffixes (a regex would become a set of characters),
# so they are names: `qkv` exists only in attention, and `fc2` is the transformer MLP's output layer (see above).
IA3_TARGETS = ("qkv", "fc2")
IA3_FEEDFORWARD = ("fc2",)

# peft's tables (in `peft.utils.constants`) of methods that target linear layers like LoRA does.
_LORA_LIKE_TABLES = (
    "TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING",
    "TRANSFORMERS_MODELS_TO_LOHA_TARGET_MODULES_MAPPING",
    "TRANSFORMERS_MODELS_TO_LOKR_TARGET_MODULES_MAPPING",
)
ALLOWLISTED_MODULE = "mmfm.models"


@dataclass(frozen=True)
class PeftTask:
    """How a model class is fine-tuned with a PEFT adapter.

    Attributes:
        task_type: the `peft.TaskType` value for `LoraConfig(task_type=...)`, or None. Only the text models
            take one: peft's task wrappers call the model with text arguments (`input_ids`, `inputs_embeds`),
            so the other modalities use a plain `PeftModel`, as peft's own image-classification examples do.
        modules_to_save: the head's new layers, trained in full and saved with the adapter (peft adds
            `classifier` by itself for SEQ_CLS and TOKEN_CLS; pass it explicitly for the others).
        auto_peft_class: the `peft` class that reloads a saved adapter with its base model.
    """

    task_type: str | None
    modules_to_save: tuple[str, ...]
    auto_peft_class: str


_TEXT_TASK_TYPES = {
    "MMFMTextForSequenceClassification": ("SEQ_CLS", "AutoPeftModelForSequenceClassification"),
    "MMFMTextForTokenClassification": ("TOKEN_CLS", "AutoPeftModelForTokenClassification"),
    "MMFMTextModel": ("FEATURE_EXTRACTION", "AutoPeftModelForFeatureExtraction"),
}


def _peft_tasks() -> dict[str, PeftTask]:
    tasks = {}
    for model_class in (*ENCODER_CLASSES.values(), *(h for heads in HEAD_CLASSES.values() for h in heads)):
        task_type, auto_peft_class = _TEXT_TASK_TYPES.get(model_class.__name__, (None, "AutoPeftModel"))
        tasks[model_class.__name__] = PeftTask(
            task_type, tuple(getattr(model_class, "head_modules", ())), auto_peft_class
        )
    return tasks


# Model class name -> how to fine-tune it (names, so models loaded from exported code match too).
PEFT_TASKS: dict[str, PeftTask] = _peft_tasks()


def peft_task(model) -> PeftTask:
    """The `PeftTask` of an mmfm model (instance or class); `ValueError` naming the known classes otherwise."""
    name = model.__name__ if isinstance(model, type) else type(model).__name__
    if name not in PEFT_TASKS:
        raise ValueError(f"No PEFT defaults for {name!r}; mmfm knows {sorted(PEFT_TASKS)}.")
    return PEFT_TASKS[name]


def point_adapter_at_auto_class(adapter_folder: str | Path, model) -> None:
    """Make a saved adapter without a peft task type reload through a transformers Auto class.

    peft records such an adapter's base class as `{"parent_library": "mmfm.models.modeling_mmfm_vision",
    "base_model_class": "MMFMVisionForImageClassification"}`, which `AutoPeftModel` imports by name: that
    needs mmfm (and its import allowlist). The head's Auto class (`transformers.AutoModelForImageClassification`)
    loads the same model from the base folder's `auto_map`: mmfm's class where mmfm is installed, the folder's
    own code with `trust_remote_code=True` where it is not. So `AutoPeftModel.from_pretrained(adapter)` works in
    both places.
    """
    config_path = Path(adapter_folder) / "adapter_config.json"
    config = json.loads(config_path.read_text())
    if config.get("task_type") is not None or not config.get("auto_mapping"):
        return  # peft's task classes (AutoPeftModelFor...) already load through transformers
    auto_classes = getattr(model, "auto_classes", ()) or ("AutoModel",)
    config["auto_mapping"] = {"base_model_class": auto_classes[0], "parent_library": "transformers"}
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def model_types() -> tuple[str, ...]:
    """The model types that get defaults: every encoder's and the composite's."""
    return (*(c.config_class.model_type for c in ENCODER_CLASSES.values()), MMFMConfig.model_type)


_registered = False


def register_peft_defaults() -> bool:
    """Add mmfm's model types to peft's default target-module tables and `mmfm.models` to its import
    allowlist (idempotent). Returns False, changing nothing, when peft is not installed."""
    global _registered
    if _registered:
        return True
    try:
        import peft.auto
        from peft.utils import constants
    except ImportError:
        logger.debug("peft is not installed: no PEFT defaults registered.")
        return False
    for model_type in model_types():
        for table in _LORA_LIKE_TABLES:
            getattr(constants, table).setdefault(model_type, TRANSFORMER_BLOCK_LINEARS)
        constants.TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING.setdefault(model_type, list(IA3_TARGETS))
        constants.TRANSFORMERS_MODELS_TO_IA3_FEEDFORWARD_MODULES_MAPPING.setdefault(
            model_type, list(IA3_FEEDFORWARD)
        )
    _extend_import_allowlist(peft.auto)
    _registered = True
    return True


def _extend_import_allowlist(peft_auto) -> None:
    """Wrap `peft.auto.get_default_import_allowlist` (looked up by name on every `from_pretrained`) so its
    default also holds `mmfm.models`; an explicit `import_allowlist=` argument still replaces the default."""
    original = peft_auto.get_default_import_allowlist
    if getattr(original, "_mmfm_extended", False):
        return

    def get_default_import_allowlist() -> list[str]:
        allowlist = list(original())
        return allowlist if ALLOWLISTED_MODULE in allowlist else [*allowlist, ALLOWLISTED_MODULE]

    get_default_import_allowlist._mmfm_extended = True
    get_default_import_allowlist.__doc__ = original.__doc__
    peft_auto.get_default_import_allowlist = get_default_import_allowlist


__all__ = [
    "IA3_FEEDFORWARD",
    "IA3_TARGETS",
    "PEFT_TASKS",
    "TRANSFORMER_BLOCK_LINEARS",
    "PeftTask",
    "peft_task",
    "point_adapter_at_auto_class",
    "register_peft_defaults",
]
