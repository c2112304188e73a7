"""GPU check of the encoders at base size, side by side with Hugging Face reference backbones.

1. Every encoder (base preset) in bf16 autocast: forward + backward finite, `sdpa` vs `eager` agreement,
   gradient checkpointing, and whether `flash_attention_2` is available.
2. Every registered objective's pretraining model (`mmfm.objectives`; base encoder, the objective's
   default hyperparameters) in bf16 autocast: finite loss and gradients, `sdpa` vs `eager` loss agreement.
3. Training-step throughput (forward, backward, fused AdamW step; bf16 autocast; sdpa) of the mmfm
   vision and text encoders against transformers' `ViTModel` and `BertModel` with identical shapes,
   reported as samples/s and ratios, with peak memory, FLOPs per step and MFU.

Usage:  python benchmarks/gpu_encoders.py [--smoke] [--out results.json]
`--smoke` uses tiny shapes so the script can be checked on a CPU.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import BertConfig, BertModel, ViTConfig, ViTModel

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for tests.model_inputs

import mmfm
from mmfm.modalities import modality_specs
from mmfm.objectives import objectives
from tests.model_inputs import make_inputs, objective_inputs

PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}  # dense bf16, datasheet


def device_peak(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)


def to_device(batch, device):
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    return batch.to(device) if isinstance(batch, torch.Tensor) else batch


def check_encoders(device, preset: str) -> dict:
    """Correctness of every encoder at `preset` size on `device` in bf16."""
    results = {}
    for modality, spec in modality_specs().items():
        extra = {"node_feature_size": 3} if modality == "graph" else {}
        config = spec.config_class.from_preset(preset, **extra)
        torch.manual_seed(0)
        model = spec.encoder_class(config).to(device)
        batch, _ = make_inputs(modality, config)
        batch = to_device(batch, device)
        entry = {}
        with torch.autocast(device.type, dtype=torch.bfloat16):
            model.eval()
            with torch.no_grad():
                sdpa = model(**batch).pooler_output.float()
                model.set_attn_implementation("eager")
                eager = model(**batch).pooler_output.float()
                model.set_attn_implementation("sdpa")
            entry["sdpa_vs_eager_max_abs_diff"] = (sdpa - eager).abs().max().item()
            entry["pooled_abs_mean"] = sdpa.abs().mean().item()
            model.train()
            loss = model(**batch).pooler_output.float().pow(2).mean()
            loss.backward()
            grads = [p.grad for p in model.parameters() if p.requires_grad]
            entry["finite_grads"] = all(g is not None and torch.isfinite(g).all().item() for g in grads)
            plain = {n: p.grad.clone() for n, p in model.named_parameters()}
            model.zero_grad(set_to_none=True)
            enable = (
                getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable
            )
            enable()
            model(**batch).pooler_output.float().pow(2).mean().backward()
            entry["checkpointing_max_grad_diff"] = max(
                (p.grad - plain[n]).abs().max().item() for n, p in model.named_parameters()
            )
        try:
            model.set_attn_implementation("flash_attention_2")
            entry["flash_attention_2"] = "available"
        except (ValueError, ImportError) as error:
            entry["flash_attention_2"] = f"unavailable: {str(error).splitlines()[0][:120]}"
        results[modality] = entry
        del model
    return results


def _seeded_loss(model, batch: dict, device) -> torch.Tensor:
    """The loss in bf16 autocast, with the global RNG seeded first (so masks drawn by the model repeat)."""
    torch.manual_seed(1)
    with torch.autocast(device.type, dtype=torch.bfloat16):
        return model(**batch).loss.float()


def check_objectives(device, preset: str) -> dict:
    """Every registered objective's model at `preset` size on `device` in bf16: finite loss and gradients,
    and the loss under `sdpa` and `eager` attention with the same masks."""
    results = {}
    for name, objective in objectives().items():
        extra = {"node_feature_size": 3} if objective.modality == "graph" else {}
        fields = {**objective.encoder_defaults, **objective.encoder_requirements, **extra}
        pretraining_config = objective.config_class.presets.get(preset, {})
        config = objective.spec.config_class.from_preset(
            preset, **fields, pretraining_config=pretraining_config
        )
        torch.manual_seed(0)
        model = objective.model_class(config).to(device)
        # The test batch with its labels; its fixed masking noise is sized for the tiny shapes only, so at
        # other sizes the model draws its own (seeded before each call, so both attentions see the same).
        batch = objective_inputs(name, config)
        if preset != "tiny":
            batch = {k: v for k, v in batch.items() if not k.endswith("noise")}
        batch = {**to_device(batch, device), **objective.step_kwargs(model.objective, 0.0)}

        entry = {}
        model.eval()
        with torch.no_grad():
            sdpa = _seeded_loss(model, batch, device)
            model.set_attn_implementation("eager")
            eager = _seeded_loss(model, batch, device)
            model.set_attn_implementation("sdpa")
        entry["sdpa_vs_eager_loss_diff"] = (sdpa - eager).abs().item()
        model.train()
        loss = _seeded_loss(model, batch, device)
        loss.backward()
        entry["loss"] = loss.item()
        entry["finite_loss"] = bool(torch.isfinite(loss).item())
        grads = [p.grad for p in model.parameters() if p.requires_grad and p.grad is not None]
        entry["finite_grads"] = bool(grads) and all(torch.isfinite(g).all().item() for g in grads)
        entry["parameters_m"] = sum(p.numel() for p in model.parameters()) / 1e6
        results[name] = entry
        del model
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return results


def time_training(model, make_batch, steps: int, warmup: int, device) -> dict:
    """Samples/s, ms/step, peak memory and FLOPs of full training steps (bf16 autocast, fused AdamW)."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device.type == "cuda")
    batch, size = make_batch()

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16):
            output = model(**batch)
            loss = output.last_hidden_state.float().pow(2).mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(warmup):
        step()
    with FlopCounterMode(display=False) as counter:
        step()
    flops = counter.get_total_flops()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / steps
    result = {"ms_per_step": 1000 * seconds, "samples_per_s": size / seconds, "tflop_per_step": flops / 1e12}
    result["achieved_tflops"] = flops / seconds / 1e12
    peak = device_peak(device)
    if peak:
        result["mfu_vs_datasheet"] = result["achieved_tflops"] / peak
    if device.type == "cuda":
        result["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
    return result


def compare_backbones(device, smoke: bool) -> dict:
    """mmfm vs transformers reference backbones with identical shapes, one process, same settings."""
    steps, warmup = (2, 1) if smoke else (20, 5)
    size = (
        {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 128}
        if smoke
        else {
            "hidden_size": 768,
            "num_hidden_layers": 12,
            "num_attention_heads": 12,
            "intermediate_size": 3072,
        }
    )
    image, patch, images = (32, 8, 4) if smoke else (224, 16, 256)
    seq, vocab, texts = (64, 1000, 4) if smoke else (512, 30522, 32)
    results = {}

    def image_batch():
        return {"pixel_values": torch.randn(images, 3, image, image, device=device)}, images

    def text_batch():
        ids = torch.randint(5, vocab, (texts, seq), device=device)
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}, texts

    candidates = {
        "vision/mmfm": lambda: mmfm.MMFMVisionModel(
            mmfm.MMFMVisionConfig(image_size=image, patch_size=patch, **size)
        ),
        "vision/hf_vit": lambda: ViTModel(
            ViTConfig(image_size=image, patch_size=patch, attn_implementation="sdpa", **size),
            add_pooling_layer=False,
        ),
        "text/mmfm": lambda: mmfm.MMFMTextModel(
            mmfm.MMFMTextConfig(
                vocab_size=vocab, max_position_embeddings=seq, position_embedding_type="learned", **size
            )
        ),
        "text/hf_bert": lambda: BertModel(
            BertConfig(vocab_size=vocab, max_position_embeddings=seq, attn_implementation="sdpa", **size),
            add_pooling_layer=False,
        ),
    }
    for name, build in candidates.items():
        torch.manual_seed(0)
        model = build().to(device).train()
        make_batch = image_batch if name.startswith("vision") else text_batch
        results[name] = time_training(model, make_batch, steps, warmup, device)
        results[name]["parameters_m"] = sum(p.numel() for p in model.parameters()) / 1e6
        del model
        if device.type == "cuda":
            torch.cuda.empty_cache()
    for modality, reference in (("vision", "hf_vit"), ("text", "hf_bert")):
        ours, theirs = results[f"{modality}/mmfm"], results[f"{modality}/{reference}"]
        results[f"{modality}/speedup_vs_{reference}"] = ours["samples_per_s"] / theirs["samples_per_s"]
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny shapes (CPU check of the script)")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() and not args.smoke else "cpu")
    report = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "transformers": __import__("transformers").__version__,
        "encoders": check_encoders(device, "tiny" if args.smoke else "base"),
        "objectives": check_objectives(device, "tiny" if args.smoke else "base"),
        "throughput": compare_backbones(device, args.smoke),
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as handle:
            handle.write(text + "\n")


if __name__ == "__main__":
    main()
