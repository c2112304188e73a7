"""What every objective's model shares: it names its objective, owns that objective's hyperparameters
(an `MMFMObjectiveConfig` stored in the encoder configuration's `pretraining_config`), checks the encoder
configuration fits, and records the Auto classes that load it when saved.

One class per objective (as transformers has `ViTMAEForPreTraining` next to `ViTForMaskedImageModeling`),
each in its own `modeling_mmfm_<modality>_<objective>.py`, so adding an objective never edits another
objective's or the encoder's code. `AutoModelForPreTraining` loads every one: mmfm registers the tuple of a
modality's objective models and transformers picks the class named in `config.architectures`; without
mmfm, the saved `auto_map` points at the saved class.

Part of the exportable model folder: imports only transformers and its siblings.
"""

import dataclasses
from typing import Any, ClassVar

from .configuration_mmfm_common import MMFMObjectiveConfig


class MMFMPreTrainingMixin:
    """Mixed into each objective's `PreTrainedModel` (before the modality's pretrained-model base).

    Class attributes:
        objective_name: the objective's registry name (`"mae"`, `"mlm"`, ...), recorded in the config.
        objective_config_class: the dataclass of its hyperparameters.
        encoder_requirements: encoder config fields the objective cannot work without (e.g. causal
            attention); a configuration that disagrees is refused, naming both.
        auto_classes: the Auto classes that load the saved model (`AutoModelForPreTraining` first).
    """

    objective_name: ClassVar[str] = ""
    objective_config_class: ClassVar[type[MMFMObjectiveConfig]] = MMFMObjectiveConfig
    encoder_requirements: ClassVar[dict[str, Any]] = {}
    auto_classes: ClassVar[tuple[str, ...]] = ("AutoModelForPreTraining",)
    _auto_class = "AutoModelForPreTraining"

    def resolve_objective(self, config) -> MMFMObjectiveConfig:
        """The objective's hyperparameters from `config.pretraining_config` (defaults filled in), after
        checking that `config` was not made for another objective and meets `encoder_requirements`.

        Records the objective and its full hyperparameters in `config`, so a saved folder says how it was
        trained.

        Raises:
            ValueError: the configuration names another objective, contradicts a requirement, or holds an
                unknown or invalid hyperparameter.
        """
        name = type(self).__name__
        recorded = getattr(config, "pretraining_objective", None)
        if recorded not in (None, self.objective_name):
            raise ValueError(
                f"{name} trains the {self.objective_name!r} objective, but the configuration was made for "
                f"{recorded!r} (config.pretraining_objective). Load it with that objective's model, or start "
                f"from a configuration without pretraining_objective."
            )
        for field, required in self.encoder_requirements.items():
            if getattr(config, field) != required:
                raise ValueError(
                    f"{name} ({self.objective_name}) needs config.{field}={required!r}, got "
                    f"{getattr(config, field)!r}."
                )
        # A hyperparameter set on the encoder config itself (transformers keeps unknown keyword arguments as
        # attributes) would be silently ignored: refuse it, pointing to `pretraining_config`.
        misplaced = sorted(
            f.name for f in dataclasses.fields(self.objective_config_class)
            if f.name in vars(config) and f.name not in {g.name for g in dataclasses.fields(config)}
        )  # fmt: skip
        if misplaced:
            raise ValueError(
                f"{name}: {misplaced} are {self.objective_config_class.__name__} hyperparameters, not fields of "
                f"{type(config).__name__}; pass them as pretraining_config={{...}}."
            )
        try:
            objective = self.objective_config_class.from_dict(getattr(config, "pretraining_config", None))
        except ValueError as err:
            raise ValueError(f"{name}: config.pretraining_config is invalid: {err}") from err
        config.pretraining_objective = self.objective_name
        config.pretraining_config = objective.to_dict()
        return objective

    def post_init(self) -> None:
        super().post_init()
        # The encoder's pattern for foreign heads was collected from it; in this model they are its own.
        for module in self.children():
            self._keys_to_ignore_on_load_unexpected.discard(getattr(module, "foreign_keys_pattern", None))

    def save_pretrained(self, save_directory, *args, **kwargs):
        # transformers writes only `_auto_class`; add every Auto class that loads this model without mmfm.
        entry = f"{type(self).__module__.rsplit('.', 1)[-1]}.{type(self).__name__}"
        self.config.auto_map = {**(getattr(self.config, "auto_map", None) or {})}
        self.config.auto_map.update({auto_class: entry for auto_class in self.auto_classes})
        return super().save_pretrained(save_directory, *args, **kwargs)


__all__ = ["MMFMPreTrainingMixin"]
