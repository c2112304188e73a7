"""`Objective`: everything mmfm knows about one self-supervised objective, and the registry of them.

Each objective is one module of this package, `mmfm/objectives/<name>.py`, that defines
`OBJECTIVE = Objective(...)`; the registry imports every such module, so adding an objective adds files and
edits none. What an objective declares:

- its name, its model class (in the exportable folder, `modeling_mmfm_<modality>_<objective>.py`, which also
  holds its hyperparameters' dataclass, its encoder requirements and its Auto classes),
- the encoder fields it prefers (`encoder_defaults`, e.g. sine-cosine positions for MAE),
- its data corruption (`collator`, for tokenized modalities), processor options and columns,
- its default evaluations and any schedule it needs while training (DropPos's sigma decay).

The run config, the recipe, `--help`, the Auto-class registration and the test suites all read this
registry; nothing else names an objective.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from transformers import PreTrainedModel

from ..modalities import ModalitySpec, get_modality
from ..models import MMFMObjectiveConfig

# Modules of this package that are not objectives.
_NOT_OBJECTIVES = {"registry"}


@dataclass(frozen=True)
class Objective:
    """One self-supervised objective.

    Attributes:
        name: the registry name (`tasks.<task>.objective` in a run config).
        model_class: the pretraining model trained and exported (an `MMFMPreTrainingMixin` model).
        description: one line for `--help` and the README.
        encoder_defaults: encoder config fields this objective prefers, applied under the run's own
            `model.config` (the model class's `encoder_requirements` are required instead).
        collator: tokenized modalities: `(tokenizer, objective config) -> collator` that pads and corrupts.
        processor_kwargs: options for the modality's processor (e.g. truncate long clips).
        evaluation: default `tasks.<task>.evaluation` entries (frozen-feature probes after the run).
        schedule: `(objective config, progress in [0, 1]) -> forward keyword arguments` of a training step,
            for hyperparameters that change during training.
        train_kwargs: forward keyword arguments of every training step (e.g. MLM's sparse prediction).
    """

    name: str
    model_class: type[PreTrainedModel]
    description: str
    encoder_defaults: Mapping[str, Any] = field(default_factory=dict)
    collator: Callable[[Any, MMFMObjectiveConfig], Any] | None = None
    processor_kwargs: Mapping[str, Any] = field(default_factory=dict)
    evaluation: tuple[Mapping[str, Any], ...] = ()
    schedule: Callable[[MMFMObjectiveConfig, float], dict[str, Any]] | None = None
    train_kwargs: Mapping[str, Any] = field(default_factory=dict)

    @property
    def modality(self) -> str:
        return self.model_class.config_class.modality

    @property
    def spec(self) -> ModalitySpec:
        return get_modality(self.modality)

    @property
    def config_class(self) -> type[MMFMObjectiveConfig]:
        """The dataclass of the objective's hyperparameters (`tasks.<task>.objective_config`)."""
        return self.model_class.objective_config_class

    @property
    def encoder_requirements(self) -> Mapping[str, Any]:
        return self.model_class.encoder_requirements

    def step_kwargs(self, objective_config: MMFMObjectiveConfig, progress: float) -> dict[str, Any]:
        """Forward keyword arguments of a training step at `progress` (step / max_steps) of the run."""
        scheduled = self.schedule(objective_config, progress) if self.schedule else {}
        return {**self.train_kwargs, **scheduled}


@cache
def objectives() -> dict[str, Objective]:
    """Every registered objective by name: one per module of `mmfm.objectives` with an `OBJECTIVE`."""
    package = importlib.import_module(__package__)
    found: dict[str, Objective] = {}
    for module_info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if module_info.name.startswith("_") or module_info.name in _NOT_OBJECTIVES:
            continue
        module = importlib.import_module(f"{__package__}.{module_info.name}")
        objective = getattr(module, "OBJECTIVE", None)
        if not isinstance(objective, Objective):
            raise ImportError(
                f"mmfm/objectives/{module_info.name}.py defines no `OBJECTIVE = Objective(...)`."
            )
        if objective.name in found:
            raise ImportError(
                f"Objective {objective.name!r} is defined twice (mmfm/objectives/{module_info.name}.py)."
            )
        if objective.model_class.objective_name != objective.name:
            raise ImportError(
                f"Objective {objective.name!r} trains {objective.model_class.__name__}, whose objective_name is "
                f"{objective.model_class.objective_name!r}."
            )
        found[objective.name] = objective
    return found


def get_objective(name: str) -> Objective:
    """The objective called `name`; `ValueError` listing the registered ones otherwise."""
    registered = objectives()
    if name not in registered:
        raise ValueError(f"Unknown objective {name!r}; objectives are {sorted(registered)}.")
    return registered[name]


def objectives_of(modality: str) -> list[Objective]:
    """The objectives of `modality`, its default first (what `AutoModelForPreTraining` builds for an encoder
    saved without heads)."""
    default = get_modality(modality).default_objective
    found = [o for o in objectives().values() if o.modality == modality]
    return sorted(found, key=lambda o: o.name != default)


__all__ = ["Objective", "get_objective", "objectives", "objectives_of"]
