"""GPU check of the encoders at base size, side by side with Hugging Face reference backbones.

1. Every encoder (base preset) in bf16 autocast: forward + backward finite, `sdpa` vs `eager` agreement,
   gradient checkpointing, and whether `flash_attention_2` is available.
2. Training-step throughput (forward, backward, fused AdamW step; bf16 autocast; sdpa) of the mmfm
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

import mmfm  # noqa: E402
from tests.model_inputs import make_inputs  # noqa: E402

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
    for modality, config_class in mmfm.CONFIG_CLASSES.items():
        extra = {"node_feature_size": 3} if modality == "graph" else {}
        config = config_class.from_preset(preset, **extra)
        torch.manual_seed(0)
        model = mmfm.ENCODER_CLASSES[modality](config).to(device)
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
        dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128)
        if smoke
        else dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072)
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
        "throughput": compare_backbones(device, args.smoke),
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as handle:
            handle.write(text + "\n")


if __name__ == "__main__":
    main()
