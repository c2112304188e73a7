"""The composite multimodal model: any subset of the mmfm encoders, per-modality projection heads and a
learnable temperature (and, for SigLIP, bias), returning L2-normalised embeddings, pairwise similarity
logits and, with `return_loss=True`, the contrastive loss that binds them (CLIP or SigLIP over every pair
of the given modalities, with negatives gathered from every process; ImageBind-style anchoring picks the
pairs a step gives). The loss maths is in `mmfm_contrastive.py`.

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
from .mmfm_contrastive import clip_loss, siglip_loss
from .mmfm_modalities import ENCODER_CLASSES, MODALITIES

# Flat keyword arguments, as transformers' CLIP/CLAP models take them (and the zero-shot pipelines pass
# them): each encoder's main input, and the text's attention mask, each routed to its modality.
FLAT_INPUTS = {encoder.main_input_name: modality for modality, encoder in ENCODER_CLASSES.items()}
FLAT_INPUTS["attention_mask"] = "text"
# `logits_per_<name>` of the output: transformers' names for the pairs its pipelines know (the other side
# is text).
PIPELINE_PAIRS = {"image": "vision", "audio": "audio"}


@dataclass
class MMFMModelOutput(ModelOutput):
    r"""Output of [`MMFMModel`].

    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*, with `return_loss=True`): the contrastive loss
            (`config.loss_type`), the mean over every pair of the given modalities.
        logit_scale (`torch.FloatTensor` of shape `()`): the similarity multiplier exp(s), s clamped to
            `config.logit_scale_max`.
        embeddings (`dict[str, torch.FloatTensor]`): per modality given, `(B_m, P)` L2-normalised embeddings.
        logits (`dict[str, torch.FloatTensor]`): for every pair of given modalities `a`, `b` (canonical
            order text, vision, audio, graph, timeseries), key `"a_b"` holds `(B_a, B_b)` scaled cosine
            similarities `logit_scale * e_a @ e_b.T` (plus `logit_bias` for SigLIP); its transpose gives
            `b` -> `a`.
        logits_per_image (`(B_vision, B_text)`), logits_per_audio (`(B_audio, B_text)`), logits_per_text
            (`(B_text, B_vision)`, or `(B_text, B_audio)` without vision): the pairs with text under
            transformers' names (`CLIPModel`, `ClapModel`), which its zero-shot pipelines read.
        encoder_outputs (`dict[str, ModelOutput]`): each encoder's own output, by modality.
    """

    loss: torch.FloatTensor | None = None
    logits_per_image: torch.FloatTensor | None = None
    logits_per_audio: torch.FloatTensor | None = None
    logits_per_text: torch.FloatTensor | None = None
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
            if module.logit_bias is not None:
                init.constant_(module.logit_bias, self.config.logit_bias_init_value)


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
        # Shape (1,), not (): DeepSpeed broadcasts parameters as bytes, which a 0-dim tensor cannot be viewed as.
        self.logit_scale = nn.Parameter(torch.full((1,), float(config.logit_scale_init_value)))
        # SigLIP's learnable bias; CLIP has none (an unused parameter would trouble DDP).
        bias = config.loss_type == "siglip"
        self.logit_bias = (
            nn.Parameter(torch.full((1,), float(config.logit_bias_init_value))) if bias else None
        )
        self.post_init()

    @classmethod
    def from_encoders(
        cls, projection_dim: int = 512, loss_type: str = "clip", **encoders: PreTrainedModel
    ) -> "MMFMModel":
        """Build a composite around already trained encoders (keyword = modality), copying their weights;
        projections and temperature start fresh."""
        cls._check_modality_names(encoders)
        config = MMFMConfig(
            projection_dim=projection_dim,
            loss_type=loss_type,
            **{f"{m}_config": _encoder_config(e.config) for m, e in encoders.items()},
        )
        model = cls(config)
        for modality, encoder in encoders.items():
            model.encoders[modality].load_state_dict(encoder.state_dict())
        return model

    @classmethod
    def from_pretrained_towers(
        cls, projection_dim: int = 512, loss_type: str = "clip", **folders: str
    ) -> "MMFMModel":
        """Build a composite whose towers start from saved single-modality models (keyword = modality, value
        = a folder or Hub id an mmfm encoder or pretraining model was saved to, e.g. a run's `model/<task>/`);
        a pretraining model's heads are left out. Projections and temperature start fresh."""
        cls._check_modality_names(folders)
        encoders = {m: ENCODER_CLASSES[m].from_pretrained(folder) for m, folder in folders.items()}
        return cls.from_encoders(projection_dim=projection_dim, loss_type=loss_type, **encoders)

    def lock_tower(self, modality: str, unlocked_last_blocks: int = 0) -> None:
        """Freeze `modality`'s encoder (LiT, Zhai et al. 2022), or all of it but its last
        `unlocked_last_blocks` transformer blocks and final norm; its projection stays trainable."""
        encoder = self._encoder_for(modality)
        blocks = encoder.transformer.layers
        if not 0 <= unlocked_last_blocks <= len(blocks):
            raise ValueError(
                f"unlocked_last_blocks must be in [0, {len(blocks)}] for the {modality} tower, got {unlocked_last_blocks}."
            )
        encoder.requires_grad_(False)
        if unlocked_last_blocks:
            for block in blocks[len(blocks) - unlocked_last_blocks :]:
                block.requires_grad_(True)
            encoder.transformer.norm.requires_grad_(True)

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

    def _modality_features(self, modality: str, inputs: dict) -> ModelOutput:
        """The encoder's output with `pooler_output` projected into the shared space, (B, P), not normalised
        (transformers 5's `get_text_features`/`get_image_features` contract)."""
        output = self._encoder_for(modality)(**inputs, return_dict=True)
        output.pooler_output = self.projections[modality](output.pooler_output)
        return output

    def get_text_features(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, **inputs
    ):
        """Text in the shared space: the text encoder's output, `pooler_output` (B, P) projected."""
        return self._modality_features(
            "text", {"input_ids": input_ids, "attention_mask": attention_mask, **inputs}
        )

    def get_vision_features(self, pixel_values: torch.Tensor, **inputs):
        """Images in the shared space: the vision encoder's output, `pooler_output` (B, P) projected."""
        return self._modality_features("vision", {"pixel_values": pixel_values, **inputs})

    get_image_features = get_vision_features  # transformers' name (CLIPModel)

    def get_audio_features(self, input_features: torch.Tensor, **inputs):
        """Audio in the shared space: the audio encoder's output, `pooler_output` (B, P) projected."""
        return self._modality_features("audio", {"input_features": input_features, **inputs})

    def get_graph_features(self, node_features: torch.Tensor, **inputs):
        """Graphs in the shared space: the graph encoder's output, `pooler_output` (B, P) projected."""
        return self._modality_features("graph", {"node_features": node_features, **inputs})

    def get_timeseries_features(self, past_values: torch.Tensor, **inputs):
        """Time series in the shared space: the encoder's output, `pooler_output` (B, P) projected."""
        return self._modality_features("timeseries", {"past_values": past_values, **inputs})

    @can_return_tuple
    def forward(
        self,
        return_loss: bool | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        **inputs: Mapping[str, torch.Tensor] | torch.Tensor,
    ) -> MMFMModelOutput:
        r"""
        Args:
            text, vision, audio, graph, timeseries (`Mapping[str, torch.Tensor]`, *optional*; one keyword per
                modality): the inputs of that modality's encoder (e.g. `{"pixel_values": (B, C, H, W)}`), as
                its processor returns them.
            input_ids, attention_mask, pixel_values, input_features, node_features, past_values
                (`torch.Tensor`, *optional*): the flat form transformers' CLIP/CLAP take (and the zero-shot
                pipelines pass): each encoder's main input, and the text's `attention_mask`. Do not give a
                modality both ways. Any other keyword is refused, naming the accepted ones.
            return_loss: also return the contrastive loss (`config.loss_type`) averaged over every pair of the
                given modalities; row i of each modality is one paired example.
        """
        given = self._group_inputs(inputs)
        logit_scale = self.logit_scale.clamp(max=self.config.logit_scale_max).exp().squeeze(0)
        logit_bias = self.logit_bias.squeeze(0) if self.logit_bias is not None else None
        embeddings, encoder_outputs = {}, {}
        for modality, modality_inputs in given.items():
            output = self._encoder_for(modality)(
                **modality_inputs,
                output_hidden_states=output_hidden_states,
                output_attentions=output_attentions,
                return_dict=True,
            )
            encoder_outputs[modality] = output
            projected = self.projections[modality](output.pooler_output)
            embeddings[modality] = nn.functional.normalize(projected, dim=-1)
        logits = {}
        for a, b in combinations(embeddings, 2):
            logits[f"{a}_{b}"] = logit_scale * embeddings[a] @ embeddings[b].T
            if logit_bias is not None:
                logits[f"{a}_{b}"] = logits[f"{a}_{b}"] + logit_bias
        loss = self.contrastive_loss(embeddings, logit_scale, logit_bias) if return_loss else None
        named = {}
        for name, modality in PIPELINE_PAIRS.items():
            if f"text_{modality}" in logits:
                named[f"logits_per_{name}"] = logits[f"text_{modality}"].T
                named.setdefault("logits_per_text", logits[f"text_{modality}"])
        return MMFMModelOutput(
            loss=loss, **named, logit_scale=logit_scale, embeddings=embeddings, logits=logits,
            encoder_outputs=encoder_outputs,
        )  # fmt: skip

    def contrastive_loss(
        self,
        embeddings: dict[str, torch.Tensor],
        logit_scale: torch.Tensor,
        logit_bias: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """`config.loss_type` averaged over every pair of `embeddings` ((B, P) unit-norm rows per modality, row i
        of each one example), negatives gathered over processes unless `config.gather_negatives` is off."""
        if len(embeddings) < 2:
            raise ValueError(
                f"return_loss=True needs at least two modalities to bind; got only {list(embeddings)}."
            )
        sizes = {m: e.shape[0] for m, e in embeddings.items()}
        if len(set(sizes.values())) != 1:
            raise ValueError(
                f"return_loss=True needs paired rows (the same batch size per modality), got {sizes}."
            )
        gather = self.config.gather_negatives
        losses = [
            clip_loss(embeddings[a], embeddings[b], logit_scale, gather=gather)
            if logit_bias is None
            else siglip_loss(embeddings[a], embeddings[b], logit_scale, logit_bias, gather=gather)
            for a, b in combinations(embeddings, 2)
        ]
        return torch.stack(losses).mean()

    def _group_inputs(self, inputs: dict) -> dict[str, Mapping[str, torch.Tensor]]:
        """Keyword inputs -> {modality: encoder inputs}, in canonical order; clear errors for anything else."""
        accepted = list(MODALITIES) + list(FLAT_INPUTS)
        unknown = sorted(k for k in inputs if k not in accepted)
        if unknown:
            raise ValueError(
                f"Unknown input(s) {unknown} for MMFMModel: pass one mapping per modality {MODALITIES} (e.g. "
                f"`vision={{'pixel_values': ...}}`) or the flat inputs {sorted(FLAT_INPUTS)}."
            )
        given: dict[str, dict] = {}
        for modality in MODALITIES:
            value = inputs.get(modality)
            if value is None:
                continue
            if not isinstance(value, Mapping):
                raise TypeError(
                    f"`{modality}` must be a mapping of encoder inputs (e.g. the processor's output), "
                    f"got {type(value).__name__}."
                )
            given[modality] = dict(value)
        nested = set(given)
        for name, modality in FLAT_INPUTS.items():
            if inputs.get(name) is None:
                continue
            if modality in nested:
                raise ValueError(
                    f"`{name}` belongs to `{modality}`, which was also given as a mapping: use one form."
                )
            given.setdefault(modality, {})[name] = inputs[name]
        if "text" in given and "text" not in nested and "input_ids" not in given["text"]:
            raise ValueError("`attention_mask` was given without `input_ids`: pass both (or text={...}).")
        if not given:
            raise ValueError(
                f"MMFMModel needs inputs for at least one of its modalities {tuple(self.encoders)}."
            )
        return {m: given[m] for m in MODALITIES if m in given}


def _forward_signature() -> inspect.Signature:
    """`MMFMModel.forward`'s signature with one keyword per registered modality, so introspection (transformers'
    `Trainer` drops dataset columns a model does not take) sees the real inputs rather than `**inputs`."""
    modality_parameters = [
        inspect.Parameter(
            m, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Mapping[str, torch.Tensor] | None
        )
        for m in MODALITIES
    ]
    flat_parameters = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=torch.Tensor | None)
        for name in FLAT_INPUTS
    ]
    flags = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=bool | None)
        for name in ("return_loss", "output_hidden_states", "output_attentions", "return_dict")
    ]
    self_parameter = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return inspect.Signature(
        [self_parameter, *modality_parameters, *flat_parameters, *flags], return_annotation=MMFMModelOutput
    )


MMFMModel.forward.__signature__ = _forward_signature()


def _encoder_config(config):
    """The encoder configuration of a saved model, without what records its pretraining objective (a
    composite's towers are encoders; their pretraining heads stay behind)."""
    config = config.__class__.from_dict(config.to_dict())
    for name in ("pretraining_objective", "pretraining_config", "architectures", "auto_map"):
        if hasattr(config, name):
            setattr(config, name, None)
    return config


__all__ = ["ENCODER_CLASSES", "MMFMModel", "MMFMModelOutput", "MMFMPreTrainedModel"]
