"""Transformer blocks shared by every mmfm encoder.

One pre-norm block (fused QKV attention + MLP) serves text, vision, audio, graph and time series.
Attention dispatches through transformers' attention interface, so `attn_implementation="eager"`,
`"sdpa"` or `"flash_attention_2"` and `model.set_attn_implementation(...)` work on every encoder.

Part of the exportable model folder: imports only torch, transformers and its siblings.
"""

import re

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers.activations import ACT2FN
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

# ----------------------------------------------------------------------------------------------
# Input checks shared by the encoders (errors name the field, what it got and what it expects)
# ----------------------------------------------------------------------------------------------


class InputDtypeError(TypeError, ValueError):
    """An input tensor of the wrong dtype. A `TypeError`, as transformers users expect for a wrong type, and a
    `ValueError` too, as mmfm raised for integer inputs (labels, edge ids) before."""


# What each `dtype` kind of `check_tensor` accepts, and how its error spells it.
_DTYPE_KINDS = {
    "float": ("floating-point values (e.g. torch.float32)", lambda t: t.is_floating_point()),
    "index": ("integer ids (torch.long or torch.int32)", lambda t: t.dtype in (torch.long, torch.int32)),
    "integer": (
        "integer ids (e.g. torch.long)",
        lambda t: not (t.is_floating_point() or t.is_complex() or t.dtype == torch.bool),
    ),
    "mask": ("0/1 flags (torch.bool, an integer or a float dtype)", lambda t: not t.is_complex()),
}


def check_tensor(
    name: str,
    tensor: torch.Tensor,
    layout: str,
    rank: int | None = None,
    dtype: str | None = None,
    device: torch.device | None = None,
    hint: str = "",
) -> None:
    """Check an input tensor's type, rank, dtype, batch and device; reads metadata only (no device sync).

    Args:
        name: the argument's name, quoted in every error.
        layout: its expected shape, e.g. "(batch_size, sequence_length)".
        rank: its number of dimensions, if fixed. Its first dimension (the batch) must not be empty.
        dtype: the dtype kind it must have: "float", "index" (what `nn.Embedding` takes), "integer" or "mask".
        device: the device of the weights that consume it; None (or a meta device: weights offloaded or not
            materialised yet) skips the check.
        hint: appended to the dtype error (how to convert).

    Raises:
        TypeError: `tensor` is not a `torch.Tensor`; `InputDtypeError` (also a `ValueError`) for a wrong dtype.
        ValueError: the wrong number of dimensions, an empty batch, or a device other than `device`.
    """
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor of shape {layout}, got {type(tensor).__name__}.")
    if rank is not None and tensor.dim() != rank:
        raise ValueError(f"`{name}` must have shape {layout} ({rank} dims), got shape {tuple(tensor.shape)}.")
    if dtype is not None:
        expected, accepts = _DTYPE_KINDS[dtype]
        if not accepts(tensor):
            message = f"`{name}` must hold {expected}, got dtype {tensor.dtype}."
            raise InputDtypeError(message + (f" {hint}" if hint else ""))
    if rank and tensor.shape[0] == 0:
        raise ValueError(
            f"`{name}` has batch size 0 (shape {tuple(tensor.shape)}): an empty batch cannot be encoded. Pass at "
            "least one sample (skip empty batches before calling the model)."
        )
    if device is not None and device.type != "meta" and tensor.device != device:
        raise ValueError(
            f"`{name}` is on device {tensor.device}, but the model's weights are on {device}. Move the inputs "
            "to the model's device first, e.g. `batch.to(model.device)`."
        )


def check_rank(name: str, tensor: torch.Tensor, rank: int, layout: str) -> None:
    """Raise `ValueError` unless `tensor` has `rank` dimensions (`layout` spells them, e.g. "(B, L)")."""
    check_tensor(name, tensor, layout, rank)


def check_finite(name: str, tensor: torch.Tensor) -> None:
    """Raise `ValueError` if a floating tensor holds NaN or Inf (reads values: one device sync)."""
    if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
        n_nan = int(torch.isnan(tensor).sum())
        n_inf = int(torch.isinf(tensor).sum())
        raise ValueError(
            f"`{name}` contains {n_nan} NaN and {n_inf} Inf values; expected finite values. "
            "Clean the data or mark missing entries with the modality's mask."
        )


def resolve_padding_mask(
    name: str, mask: torch.Tensor | None, shape: tuple[int, ...], device: torch.device, validate: bool
) -> torch.Tensor:
    """A (B, L) padding mask (1 = real, 0 = padding) as bool; all real when `mask` is None.

    Raises `ValueError` if the shape is wrong or, when `validate` (reads values: one device sync), if a
    sample has no real element (an empty input).
    """
    if mask is None:
        return torch.ones(shape, dtype=torch.bool, device=device)
    check_tensor(name, mask, f"{tuple(shape)}", dtype="mask", device=device)
    if tuple(mask.shape) != tuple(shape):
        raise ValueError(f"`{name}` must have shape {tuple(shape)}, got {tuple(mask.shape)}.")
    mask = mask.bool()
    if validate:
        empty = (~mask.any(dim=-1)).nonzero().flatten().tolist()
        if empty:
            raise ValueError(
                f"`{name}` marks no real element for sample(s) {empty}: empty inputs cannot be encoded. "
                "Drop empty samples before batching."
            )
    return mask


def check_token_flags(
    name: str,
    flags: torch.Tensor,
    shape: tuple[int, ...],
    token: torch.Tensor | None,
    option: str,
    owner: str,
) -> None:
    """Check per-token flags that swap in a learned token (masked patches, nodes, dropped positions).

    Raises `ValueError` if the model was built without that token (`option=True` builds it; `owner` is the
    pretraining model that does), or if `flags` is not a bool tensor of `shape`.
    """
    if token is None:
        raise ValueError(
            f"`{name}` needs its learned token: build the model with {option}=True ({owner} does)."
        )
    check_tensor(name, flags, f"{tuple(shape)}", device=token.device)
    if tuple(flags.shape) != tuple(shape) or flags.dtype != torch.bool:
        raise ValueError(
            f"`{name}` must be a bool tensor of shape {tuple(shape)} (one flag per token), got {flags.dtype} "
            f"of shape {tuple(flags.shape)}."
        )


def masked_mean(hidden_states: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean over dim 1 of (B, L, D) `hidden_states`, counting only positions where (B, L) `mask` is true."""
    if mask is None:
        return hidden_states.mean(dim=1)
    weights = mask.to(hidden_states.dtype).unsqueeze(-1)
    return (hidden_states * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


# ----------------------------------------------------------------------------------------------
# Positions
# ----------------------------------------------------------------------------------------------


def sinusoidal_embedding_1d(positions: torch.Tensor, dim: int) -> torch.Tensor:
    """Fixed sine-cosine embedding (Vaswani et al.) of float positions (...,) -> (..., dim)."""
    half = dim // 2
    omega = torch.arange(half, device=positions.device, dtype=torch.float64) / max(half, 1)
    omega = 1.0 / (10000.0**omega)
    angles = positions.to(torch.float64).unsqueeze(-1) * omega
    emb = torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[..., :1])], dim=-1)
    return emb.float()


def sincos_embedding_2d(grid_height: int, grid_width: int, dim: int, device=None) -> torch.Tensor:
    """2-D sine-cosine embedding with the table layout of MAE (He et al., 2022; `get_2d_sincos_pos_embed`,
    also transformers' ViTMAE and DropPos): the first half of the channels encodes the column, the second
    half the row (MAE's meshgrid puts the width first). Returns (grid_height * grid_width, dim), row-major
    like the patch order, so MAE position tables carry over unchanged."""
    if dim % 4:
        raise ValueError(f"2-D sine-cosine positions need hidden_size divisible by 4, got {dim}.")
    rows = torch.arange(grid_height, device=device).repeat_interleave(grid_width)
    cols = torch.arange(grid_width, device=device).repeat(grid_height)
    return torch.cat(
        [sinusoidal_embedding_1d(cols, dim // 2), sinusoidal_embedding_1d(rows, dim // 2)], dim=-1
    )


def rotary_cos_sin(position_ids: torch.Tensor, head_dim: int, base: float, dtype: torch.dtype):
    """Rotary position embedding tables (Su et al., RoFormer) for (B, L) integer positions.

    Computed on the fly rather than stored as a buffer, so models built on the meta device by
    `from_pretrained` need no special initialisation. Returns cos, sin of shape (B, L, head_dim).
    """
    inv_freq = 1.0 / (
        base ** (torch.arange(0, head_dim, 2, device=position_ids.device, dtype=torch.float32) / head_dim)
    )
    freqs = position_ids.to(torch.float32).unsqueeze(-1) * inv_freq
    emb = torch.cat([freqs, freqs], dim=-1)
    return emb.cos().to(dtype), emb.sin().to(dtype)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    first, second = x.chunk(2, dim=-1)
    return torch.cat([-second, first], dim=-1)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate (B, H, L, d) queries or keys by (B, L, d) cos/sin tables."""
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    return x * cos + _rotate_half(x) * sin


# ----------------------------------------------------------------------------------------------
# Attention
# ----------------------------------------------------------------------------------------------


def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference attention: softmax(q k^T * scaling + mask) v, in float32 for the softmax.

    Args:
        query, key, value: (B, H, L, d).
        attention_mask: None, a boolean (B, 1|H, Lq, Lk) mask (True = attend) or an additive float mask/bias.

    Returns:
        Attention output (B, Lq, H, d) and weights (B, H, Lq, Lk).
    """
    scores = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        if attention_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attention_mask, torch.finfo(scores.dtype).min)
        else:
            scores = scores + attention_mask.to(scores.dtype)
    elif getattr(module, "is_causal", False) and query.shape[2] > 1:
        causal = torch.ones(query.shape[2], key.shape[2], dtype=torch.bool, device=query.device).tril()
        scores = scores.masked_fill(~causal, torch.finfo(scores.dtype).min)
    weights = nn.functional.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    weights = nn.functional.dropout(weights, p=dropout, training=module.training)
    output = torch.matmul(weights, value).transpose(1, 2).contiguous()
    return output, weights


class MMFMAttention(nn.Module):
    """Multi-head self-attention with one fused QKV projection.

    The kernel is chosen per call from `config._attn_implementation` through
    `ALL_ATTENTION_FUNCTIONS`, falling back to `eager_attention_forward`.
    """

    def __init__(self, config, is_causal: bool = False):
        super().__init__()
        self.config = config
        self.num_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.scaling = self.head_dim**-0.5
        self.is_causal = is_causal
        self.dropout = config.attention_probs_dropout_prob
        self.qkv = nn.Linear(config.hidden_size, 3 * config.hidden_size, bias=config.qkv_bias)
        self.out_proj = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_embeddings: tuple[torch.Tensor, torch.Tensor] | None = None,
        **kwargs,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(B, L, D) -> (B, L, D) and the attention weights (eager only, else None)."""
        batch, length, _ = hidden_states.shape
        qkv = self.qkv(hidden_states).view(batch, length, 3, self.num_heads, self.head_dim)
        query, key, value = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, H, L, d)
        if position_embeddings is not None:
            cos, sin = position_embeddings
            query, key = apply_rotary(query, cos, sin), apply_rotary(key, cos, sin)
        if attention_mask is not None and attention_mask.is_floating_point():
            # Additive masks/biases must match the query dtype for sdpa under autocast (bf16/fp16).
            attention_mask = attention_mask.to(query.dtype)
        attention_interface = ALL_ATTENTION_FUNCTIONS.get_interface(
            self.config._attn_implementation, eager_attention_forward
        )
        output, weights = attention_interface(
            self,
            query,
            key,
            value,
            attention_mask,
            dropout=self.dropout if self.training else 0.0,
            scaling=self.scaling,
            is_causal=self.is_causal,
            **kwargs,
        )
        output = output.reshape(batch, length, self.num_heads * self.head_dim)
        return self.out_proj(output), weights


class MMFMMLP(nn.Module):
    """Position-wise feed-forward network: (B, L, D) -> (B, L, D)."""

    def __init__(self, config):
        super().__init__()
        self.fc1 = nn.Linear(config.hidden_size, config.intermediate_size)
        self.act = ACT2FN[config.hidden_act]
        self.fc2 = nn.Linear(config.intermediate_size, config.hidden_size)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(hidden_states)))


class MMFMLayer(GradientCheckpointingLayer):
    """Pre-norm transformer block: x + Attn(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, config, is_causal: bool = False):
        super().__init__()
        self.attention_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.attention = MMFMAttention(config, is_causal=is_causal)
        self.mlp_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.mlp = MMFMMLP(config)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_embeddings: tuple[torch.Tensor, torch.Tensor] | None = None,
        **kwargs,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        attended, weights = self.attention(
            self.attention_norm(hidden_states), attention_mask, position_embeddings, **kwargs
        )
        hidden_states = hidden_states + self.dropout(attended)
        hidden_states = hidden_states + self.dropout(self.mlp(self.mlp_norm(hidden_states)))
        return hidden_states, weights


class MMFMTransformer(nn.Module):
    """A stack of `MMFMLayer` blocks followed by a final LayerNorm."""

    def __init__(self, config, is_causal: bool = False):
        super().__init__()
        self.config = config
        self.layers = nn.ModuleList([MMFMLayer(config, is_causal) for _ in range(config.num_hidden_layers)])
        self.norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        position_embeddings: tuple[torch.Tensor, torch.Tensor] | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        state_shape: tuple[int, ...] | None = None,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...] | None, tuple[torch.Tensor, ...] | None]:
        """Run the blocks on (B, L, D) embeddings; the output flags default to the config's.

        `state_shape` (e.g. (B, C, P, D) when the time-series encoder runs its B * C channels as the batch):
        hidden states are returned in that shape, and each block reads its input back from the returned
        tensor, so the states a caller receives are part of the autograd graph (their `.grad` is filled by
        `backward`, as transformers' models guarantee).

        Returns:
            The normalised last hidden state (B, L, D) (or `state_shape`); when asked, the input of every
            block plus the normalised output (num_layers + 1 tensors); and each block's attention weights
            (B, H, L, L) (eager attention only).
        """
        if output_hidden_states is None:
            output_hidden_states = self.config.output_hidden_states
        if output_attentions is None:
            output_attentions = self.config.output_attentions
        flat_shape = hidden_states.shape
        all_hidden = [] if output_hidden_states else None
        all_attentions = [] if output_attentions else None
        for layer in self.layers:
            if all_hidden is not None:
                if state_shape is not None:
                    recorded = hidden_states.view(state_shape)
                    hidden_states = recorded.view(flat_shape)
                    all_hidden.append(recorded)
                else:
                    all_hidden.append(hidden_states)
            # hidden_states goes positionally so gradient checkpointing can propagate its gradient.
            hidden_states, weights = layer(hidden_states, attention_mask, position_embeddings)
            if all_attentions is not None:
                all_attentions.append(weights)
        hidden_states = self.norm(hidden_states)
        if state_shape is not None:
            hidden_states = hidden_states.view(state_shape)
        if all_hidden is not None:
            all_hidden.append(hidden_states)
        return (
            hidden_states,
            tuple(all_hidden) if all_hidden is not None else None,
            tuple(all_attentions) if all_attentions is not None else None,
        )


class ResizedConfig:
    """A model config seen with other transformer sizes, for the decoders of pretraining heads.

    Every attribute not overridden (the attention implementation above all) is read from the model's
    config at call time, so `set_attn_implementation` reaches the decoder too. Dunder and private lookups
    are not forwarded, so `copy.deepcopy`, `pickle` and `torch.save` see a plain object (an EMA teacher
    or PEFT's model copies need that).
    """

    def __init__(self, config, **sizes):
        self._config = config
        self._sizes = sizes

    def __getattr__(self, name: str):
        # Only reached for names not in __dict__; while unpickling, __dict__ is still empty.
        if name.startswith("__") or name in ("_config", "_sizes"):
            raise AttributeError(name)
        sizes = self.__dict__.get("_sizes", {})
        if name in sizes:
            return sizes[name]
        return getattr(self._config, name)


def decoder_config(config, sizes) -> ResizedConfig:
    """The model `config` with the `decoder_*` sizes of `sizes` (an objective's config), for a decoder
    `MMFMTransformer`."""
    return ResizedConfig(
        config,
        hidden_size=sizes.decoder_hidden_size,
        num_hidden_layers=sizes.decoder_num_hidden_layers,
        num_attention_heads=sizes.decoder_num_attention_heads,
        intermediate_size=sizes.decoder_intermediate_size,
    )


class MMFMEncoderPreTrainedModel(PreTrainedModel):
    """Contract shared by every mmfm encoder: attention backends, checkpointing, no-split blocks."""

    # Published classes carry their code: saving copies this folder's files next to the weights.
    _auto_class = "AutoModel"
    supports_gradient_checkpointing = True
    _no_split_modules = ["MMFMLayer"]
    _supports_sdpa = True
    _supports_flash_attn = True
    _can_compile_fullgraph = False

    # Set on a bare encoder by `post_init`: the pattern of checkpoint keys that belong to no module of it.
    foreign_keys_pattern: str | None = None

    def input_device(self) -> torch.device:
        """The device of the weights that consume the inputs (the input embedding), which inputs must be on.

        Read from that module rather than `self.device`, so a model split over devices (`device_map`) is
        compared with the right one; a meta device (offloaded weights) makes `check_tensor` skip the check."""
        return self.get_input_embeddings().weight.device

    def post_init(self) -> None:
        super().post_init()
        if not hasattr(self, self.base_model_prefix):
            # A bare encoder: loading it from a pretraining checkpoint leaves that objective's heads behind
            # silently. Everything outside the encoder's own modules is such a head (objectives are free to
            # name theirs), so the pattern is built from the encoder's children rather than listing heads.
            # A model with heads drops it again (`MMFMPreTrainingMixin.post_init`): there, heads are its own.
            own = "|".join(re.escape(name) for name, _ in self.named_children())
            self.foreign_keys_pattern = rf"^(?!(?:{self.base_model_prefix}|{own})\.)"
            self._keys_to_ignore_on_load_unexpected.add(self.foreign_keys_pattern)


__all__ = [
    "MMFMMLP",
    "InputDtypeError",
    "MMFMAttention",
    "MMFMEncoderPreTrainedModel",
    "MMFMLayer",
    "MMFMTransformer",
    "ResizedConfig",
    "apply_rotary",
    "check_finite",
    "check_rank",
    "check_tensor",
    "check_token_flags",
    "decoder_config",
    "eager_attention_forward",
    "masked_mean",
    "resolve_padding_mask",
    "rotary_cos_sin",
    "sincos_embedding_2d",
    "sinusoidal_embedding_1d",
]
