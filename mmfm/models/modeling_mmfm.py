"""The composite multimodal model: any subset of the mmfm encoders, per-modality projection heads and a
learnable temperature, returning L2-normalised embeddings and pairwise similarity logits (CLIP /
ImageBind-style). The contrastive objectives that train it live outside the exportable folder.

Part of the exportable model folder: imports only torch, transformers and its siblings.
"""

import inspect
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import combinations

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.utils import ModelOutput
from transformers.utils.generic import can_return_tuple

from .configuration_mmfm import MMFMConfig
from .mmfm_modalities import ENCODER_CLASSES, MODALITIES


@dataclass
class MMFMModelOutput(ModelOutput):
    r"""Output of [`MMFMModel`].

    Args:
        logit_scale (`torch.FloatTensor` of shape `()`): the similarity multiplier exp(s), s clamped to
            `config.logit_scale_max`.
        embeddings (`dict[str, torch.FloatTensor]`): per modality given, `(B_m, P)` L2-normalised embeddings.
        logits (`dict[str, torch.FloatTensor]`): for every pair of given modalities `a`, `b` (canonical
            order text, vision, audio, graph, timeseries), key `"a_b"` holds `(B_a, B_b)` scaled cosine
            similarities `logit_scale * e_a @ e_b.T`; its transpose gives `b` -> `a`.
        encoder_outputs (`dict[str, ModelOutput]`): each encoder's own output, by modality.
    """

    logit_scale: torch.FloatTensor | None = None
    embeddings: dict[str, torch.FloatTensor] | None = None
    logits: dict[str, torch.FloatTensor] | None = None
    encoder_outputs: dict[str, ModelOutput] | None = None


class MMFMPreTrainedModel(PreTrainedModel):
    config: MMFMConfig
    config_class = MMFMConfig
    base_model_prefix = "mmfm"
    # The inputs of the first modality (`forward` takes one mapping of encoder inputs per modality).
    main_input_name = MODALITIES[0]
    input_modalities = tuple(dict.fromkeys(m for e in ENCODER_CLASSES.values() for m in e.input_modalities))
    _auto_class = "AutoModel"
    supports_gradient_checkpointing = True
    _no_split_modules = sorted({name for e in ENCODER_CLASSES.values() for name in e._no_split_modules})
    _supports_sdpa = True
    _supports_flash_attn = True

    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, MMFMModel):
            init.constant_(module.logit_scale, self.config.logit_scale_init_value)


class MMFMModel(MMFMPreTrainedModel):
    """Encoders for the configured modalities, linear projections to a shared space, a temperature.

    Call it with one mapping of encoder inputs per modality, named by the modality:

        outputs = model(text={"input_ids": ..., "attention_mask": ...}, vision={"pixel_values": ...})
        outputs.embeddings["vision"]   # (B, P), unit norm
        outputs.logits["text_vision"]  # (B_text, B_vision)
    """

    def __init__(self, config: MMFMConfig):
        super().__init__(config)
        if not config.modalities:
            raise ValueError(
                "MMFMConfig includes no encoder: set at least one of "
                + ", ".join(f"{m}_config" for m in MODALITIES)
                + "."
            )
        self.encoders = nn.ModuleDict(
            {m: ENCODER_CLASSES[m](config.modality_config(m)) for m in config.modalities}
        )
        self.projections = nn.ModuleDict(
            {
                m: nn.Linear(config.modality_config(m).hidden_size, config.projection_dim, bias=False)
                for m in config.modalities
            }
        )
        self.logit_scale = nn.Parameter(torch.tensor(float(config.logit_scale_init_value)))
        self.post_init()

    @classmethod
    def from_encoders(cls, projection_dim: int = 512, **encoders: PreTrainedModel) -> "MMFMModel":
        """Build a composite around already trained encoders (keyword = modality), copying their weights;
        projections and temperature start fresh."""
        cls._check_modality_names(encoders)
        config = MMFMConfig(
            projection_dim=projection_dim, **{f"{m}_config": e.config for m, e in encoders.items()}
        )
        model = cls(config)
        for modality, encoder in encoders.items():
            model.encoders[modality].load_state_dict(encoder.state_dict())
        return model

    @staticmethod
    def _check_modality_names(names) -> None:
        unknown = sorted(set(names) - set(MODALITIES))
        if unknown:
            raise ValueError(f"Unknown modality name(s) {unknown}; modalities are {MODALITIES}.")

    def _encoder_for(self, modality: str) -> nn.Module:
        self._check_modality_names([modality])
        if modality not in self.encoders:
            raise ValueError(
                f"This MMFMModel has no {modality} encoder; it encodes {tuple(self.encoders)}. "
                f"Add a {modality}_config to the MMFMConfig to include one."
            )
        return self.encoders[modality]

    def get_features(self, modality: str, normalize: bool = True, **inputs) -> torch.FloatTensor:
        """Embed one modality's inputs: the encoder's pooled output, projected (B, P), unit norm if asked."""
        pooled = self._encoder_for(modality)(**inputs, return_dict=True).pooler_output
        features = self.projections[modality](pooled)
        return nn.functional.normalize(features, dim=-1) if normalize else features

    @can_return_tuple
    def forward(
        self,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        **inputs: Mapping[str, torch.Tensor],
    ) -> MMFMModelOutput:
        r"""
        Args:
            text, vision, audio, graph, timeseries (`Mapping[str, torch.Tensor]`, *optional*; one keyword per
                modality): the inputs of that modality's encoder (e.g. `{"pixel_values": (B, C, H, W)}`), as
                its processor returns them. Any other keyword is refused, naming the modalities.
        """
        self._check_modality_names(inputs)
        given = {m: inputs[m] for m in MODALITIES if inputs.get(m) is not None}
        if not given:
            raise ValueError(
                f"MMFMModel needs inputs for at least one of its modalities {tuple(self.encoders)}."
            )
        logit_scale = self.logit_scale.clamp(max=self.config.logit_scale_max).exp()
        embeddings, encoder_outputs = {}, {}
        for modality, modality_inputs in given.items():
            if not isinstance(modality_inputs, Mapping):
                raise TypeError(
                    f"`{modality}` must be a mapping of encoder inputs (e.g. the processor's output), "
                    f"got {type(modality_inputs).__name__}."
                )
            output = self._encoder_for(modality)(
                **modality_inputs,
                output_hidden_states=output_hidden_states,
                output_attentions=output_attentions,
                return_dict=True,
            )
            encoder_outputs[modality] = output
            projected = self.projections[modality](output.pooler_output)
            embeddings[modality] = nn.functional.normalize(projected, dim=-1)
        logits = {
            f"{a}_{b}": logit_scale * embeddings[a] @ embeddings[b].T for a, b in combinations(embeddings, 2)
        }
        return MMFMModelOutput(
            logit_scale=logit_scale, embeddings=embeddings, logits=logits, encoder_outputs=encoder_outputs
        )


def _forward_signature() -> inspect.Signature:
    """`MMFMModel.forward`'s signature with one keyword per registered modality, so introspection (transformers'
    `Trainer` drops dataset columns a model does not take) sees the real inputs rather than `**inputs`."""
    modality_parameters = [
        inspect.Parameter(
            m, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Mapping[str, torch.Tensor] | None
        )
        for m in MODALITIES
    ]
    flags = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=bool | None)
        for name in ("output_hidden_states", "output_attentions", "return_dict")
    ]
    self_parameter = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return inspect.Signature(
        [self_parameter, *modality_parameters, *flags], return_annotation=MMFMModelOutput
    )


MMFMModel.forward.__signature__ = _forward_signature()


__all__ = ["ENCODER_CLASSES", "MMFMModel", "MMFMModelOutput", "MMFMPreTrainedModel"]
