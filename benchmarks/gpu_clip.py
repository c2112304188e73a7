"""CLIP training throughput on one GPU: mmfm's binding model against transformers' `CLIPModel`.

    python benchmarks/gpu_clip.py [--steps 50] [--batch 256] [--compile] [--output outputs/gpu_clip] [--smoke]

Builds mmfm's `MMFMModel` (text + vision towers, projection 512, `loss_type="clip"`) and transformers'
`CLIPModel` at the same shapes: a ViT-B/32 image tower (224 px, patch 32, width 768, 12 layers, 12 heads,
MLP 3072) and CLIP's base text tower (width 512, 12 layers, 8 heads, MLP 2048, 77 tokens, vocab 49408,
causal attention, pooled at the last token), quick-GELU and LayerNorm eps 1e-5 on both, sdpa attention.
Both train on the same random batch (`--batch` images and captions already on the device; every caption
77 tokens long ending with the end-of-text id) with the same loop: forward with the contrastive loss
(`return_loss=True`), backward, AdamW step (fused on the GPU), in bf16 autocast. The mmfm model runs twice:
with its default `validate_inputs=True` (value checks that synchronise the device every forward) and
with `validate_inputs=False`. `--compile` wraps both models in `torch.compile` (the eager, counted warm-up
step comes first). The first `--warmup` steps of every run are not timed.

Reported per run: samples/s, ms per step, TFLOP per step (`mmfm.training.metrics.count_flops`, i.e.
`FlopCounterMode`, on one real step), achieved TFLOP/s, MFU against the dense bf16 datasheet peak of
`mmfm.training.metrics.peak_flops_per_second` (or `MMFM_PEAK_TFLOPS`), peak memory, parameters, and the
mmfm / HF ratios of samples/s and peak memory. Prints a Markdown table, writes `<output>/results.json` and
takes about a minute on one H100.

`--smoke` runs the same flow on the CPU with tiny towers in fp32 (3 steps, the first untimed; with
`--compile` 6, the first 4 untimed), to check the script without a GPU. Nothing is downloaded (`HF_HUB_OFFLINE=1`).
"""

import argparse
import gc
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
from transformers import CLIPConfig, CLIPModel, CLIPTextConfig, CLIPVisionConfig

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from mmfm.models import MMFMConfig, MMFMModel, MMFMTextConfig, MMFMVisionConfig
from mmfm.training.metrics import count_flops, peak_flops_per_second, peak_memory_bytes

LAYERS = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")
# CLIP ViT-B/32 (transformers' CLIPConfig defaults) and tiny towers for `--smoke`.
SHAPES = {
    "base": {"vision": dict(zip(LAYERS, (768, 12, 12, 3072))), "text": dict(zip(LAYERS, (512, 12, 8, 2048))),
             "image": 224, "patch": 32, "seq": 77, "vocab": 49408, "projection": 512},
    "tiny": {"vision": dict(zip(LAYERS, (64, 2, 4, 128))), "text": dict(zip(LAYERS, (32, 2, 4, 64))),
             "image": 32, "patch": 8, "seq": 16, "vocab": 1000, "projection": 16},
}  # fmt: skip
COMMON = {"hidden_act": "quick_gelu", "layer_norm_eps": 1e-5}  # CLIP's, on both towers of both models


def settings(args) -> dict:
    """Shapes and run lengths: base size in bf16 on the GPU, tiny in fp32 on the CPU for `--smoke`."""
    if args.smoke:
        # With --compile, three compiled warm-up steps follow the eager, counted one (the first two compile).
        extra = 3 if args.compile else 0
        return {"preset": "tiny", **SHAPES["tiny"], "batch": 8, "steps": 3 + extra, "warmup": 1 + extra,
                "precision": "no", "compile": args.compile}  # fmt: skip
    return {"preset": "base", **SHAPES["base"], "batch": args.batch, "steps": args.steps, "warmup": args.warmup,
            "precision": "bf16", "compile": args.compile}  # fmt: skip


def build_mmfm(s: dict, validate_inputs: bool) -> MMFMModel:
    """mmfm's binding model in CLIP's form: causal text tower pooled at the last real token, learned positions."""
    text = MMFMTextConfig(vocab_size=s["vocab"], max_position_embeddings=s["seq"], position_embedding_type="learned",
                          is_causal=True, pooling="last", validate_inputs=validate_inputs, **COMMON, **s["text"])  # fmt: skip
    vision = MMFMVisionConfig(image_size=s["image"], patch_size=s["patch"], pooling="cls",
                              validate_inputs=validate_inputs, **COMMON, **s["vision"])  # fmt: skip
    config = MMFMConfig(text_config=text, vision_config=vision, projection_dim=s["projection"], loss_type="clip",
                        attn_implementation="sdpa")  # fmt: skip
    return MMFMModel(config)


def build_hf(s: dict) -> CLIPModel:
    """transformers' CLIPModel at the same shapes (its end-of-text id is the last of the vocabulary)."""
    text = CLIPTextConfig(vocab_size=s["vocab"], max_position_embeddings=s["seq"], eos_token_id=s["vocab"] - 1,
                          bos_token_id=s["vocab"] - 2, pad_token_id=1, **COMMON, **s["text"])  # fmt: skip
    vision = CLIPVisionConfig(image_size=s["image"], patch_size=s["patch"], **COMMON, **s["vision"])
    config = CLIPConfig(text_config=text.to_dict(), vision_config=vision.to_dict(), projection_dim=s["projection"],
                        attn_implementation="sdpa")  # fmt: skip
    return CLIPModel(config)


def make_batch(s: dict, device: torch.device) -> dict:
    """One random paired batch: images, and full-length captions (no padding) ending with end-of-text."""
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(2, s["vocab"] - 2, (s["batch"], s["seq"]), generator=generator)
    ids[:, 0], ids[:, -1] = s["vocab"] - 2, s["vocab"] - 1  # start- and end-of-text
    pixels = torch.randn(s["batch"], 3, s["image"], s["image"], generator=generator)
    return {"input_ids": ids.to(device), "attention_mask": torch.ones_like(ids).to(device),
            "pixel_values": pixels.to(device)}  # fmt: skip


def attention_backends(model: torch.nn.Module) -> list[str]:
    """The attention implementations the model and its sub-configs were built with."""
    configs = [model.config, *(getattr(model.config, k, None) for k in ("text_config", "vision_config"))]
    return sorted({c._attn_implementation for c in configs if c is not None})


def free(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def time_training(name: str, setting: str, build, s: dict, batch: dict, device: torch.device,
                  peak: float | None) -> dict:  # fmt: skip
    """Full training steps (forward with the contrastive loss, backward, AdamW step) of one model."""
    free(device)
    torch.manual_seed(0)
    model = build().to(device).train()
    row = {"name": name, "setting": setting, "batch": s["batch"], "attention": attention_backends(model),
           "parameters_m": sum(p.numel() for p in model.parameters()) / 1e6}  # fmt: skip
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.1, fused=device.type == "cuda")
    if isinstance(model, MMFMModel):
        inputs = {"text": {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]},
                  "vision": {"pixel_values": batch["pixel_values"]}}  # fmt: skip
    else:
        inputs = dict(batch)
    runner = model

    def step() -> torch.Tensor:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=s["precision"] == "bf16"):
            loss = runner(**inputs, return_loss=True).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.detach()

    first, flops = count_flops(step)  # the first warm-up step, eager, counted
    if s["compile"]:
        runner = torch.compile(model)
    for _ in range(s["warmup"] - 1):
        step()
    timed = s["steps"] - s["warmup"]
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(timed):
        loss = step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = (time.perf_counter() - start) / timed
    row.update(samples_per_s=s["batch"] / seconds, ms_per_step=1000 * seconds, tflop_per_step=flops / 1e12,
               tflops_per_s=flops / seconds / 1e12, mfu=flops / seconds / peak if peak else None,
               peak_memory_gib=peak_memory_bytes(device) / 2**30 if device.type == "cuda" else None,
               first_loss=first.item(), final_loss=loss.item())  # fmt: skip
    print(f"   {name} ({setting}): {row['samples_per_s']:,.1f} samples/s, {row['ms_per_step']:.1f} ms/step, "
          f"loss {row['first_loss']:.3f} -> {row['final_loss']:.3f}", flush=True)  # fmt: skip
    return row


def run(
    name: str, setting: str, build, s: dict, batch: dict, device: torch.device, peak: float | None
) -> dict:
    """`time_training`, with a failure (out of memory, a compile error) recorded as a row instead of raised."""
    try:
        return time_training(name, setting, build, s, batch, device, peak)
    except Exception as error:  # noqa: BLE001 - one failed run must not lose the others
        message = f"{type(error).__name__}: {str(error).splitlines()[0][:200] if str(error) else ''}"
        print(f"!! {name} ({setting}) FAILED: {message}", file=sys.stderr, flush=True)
        free(device)
        return {"name": name, "setting": setting, "batch": s["batch"], "error": message}


def fmt(value, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def table(rows: list[dict]) -> str:
    lines = ["| name | setting | batch | samples/s | ms/step | TFLOP/step | TFLOP/s | MFU | peak GiB | params M | vs HF |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        if "error" in r:
            lines.append(
                f"| {r['name']} | {r['setting']} | {r['batch']} | FAILED ({r['error']}) | | | | | | | |"
            )
            continue
        mfu = "n/a" if r["mfu"] is None else f"{100 * r['mfu']:.1f}%"
        lines.append(f"| {r['name']} | {r['setting']} | {r['batch']} | {fmt(r['samples_per_s'], ',.1f')} | "
                     f"{fmt(r['ms_per_step'], '.1f')} | {fmt(r['tflop_per_step'], '.3g')} | "
                     f"{fmt(r['tflops_per_s'], '.3g')} | {mfu} | {fmt(r['peak_memory_gib'], '.2f')} | "
                     f"{fmt(r['parameters_m'], '.1f')} | {fmt(r.get('ratio_vs_hf'), '.2f')}x |")  # fmt: skip
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=50, help="steps per run, warm-up included")
    parser.add_argument("--warmup", type=int, default=10, help="first steps of every run, not timed")
    parser.add_argument("--batch", type=int, default=256, help="image-caption pairs per step")
    parser.add_argument("--compile", action="store_true", help="torch.compile both models")
    parser.add_argument("--output", default="outputs/gpu_clip", help="folder of results.json")
    parser.add_argument("--smoke", action="store_true", help="tiny towers on the CPU, 3 steps")
    args = parser.parse_args()
    s = settings(args)
    if s["warmup"] < 1 or s["steps"] <= s["warmup"]:
        parser.error("--warmup must be at least 1 and --steps more than --warmup")
    if not args.smoke and not torch.cuda.is_available():
        print("No CUDA device: this benchmark needs a GPU (use --smoke to check the script on a CPU).")
        return 2
    device = torch.device("cpu" if args.smoke else "cuda")
    output = (ROOT / args.output).resolve()
    output.mkdir(parents=True, exist_ok=True)
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    peak = peak_flops_per_second(device, "bf16") if device.type == "cuda" else None
    peak_text = fmt(None if peak is None else peak / 1e12, ".1f")
    print(f"Device: {gpu}; MFU peak: {peak_text} TFLOP/s dense bf16; batch {s['batch']}, {s['steps']} steps per "
          f"run, the first {s['warmup']} untimed; precision {s['precision']}; compile {s['compile']}", flush=True)  # fmt: skip
    batch = make_batch(s, device)
    setting = ("bf16" if s["precision"] == "bf16" else "fp32") + (", compiled" if s["compile"] else "")
    rows = [
        run("mmfm MMFMModel", setting, lambda: build_mmfm(s, True), s, batch, device, peak),
        run("mmfm MMFMModel", setting + ", validate_inputs=False", lambda: build_mmfm(s, False), s, batch, device,
            peak),
        run("HF CLIPModel", setting, lambda: build_hf(s), s, batch, device, peak),
    ]  # fmt: skip
    reference = rows[-1]
    ratios = {}
    if "error" not in reference:
        reference["ratio_vs_hf"] = 1.0
        for row in rows[:-1]:
            if "error" in row:
                continue
            row["ratio_vs_hf"] = row["samples_per_s"] / reference["samples_per_s"]
            key = "mmfm_vs_hf" + ("_no_validation" if "validate_inputs=False" in row["setting"] else "")
            memory = None
            if row["peak_memory_gib"] is not None and reference["peak_memory_gib"]:
                memory = row["peak_memory_gib"] / reference["peak_memory_gib"]
            ratios[key] = {"samples_per_s": row["ratio_vs_hf"], "peak_memory": memory}
    text, vision = s["text"], s["vision"]
    notes = [
        f"Device {gpu}; MFU = achieved FLOP/s / {peak_text} TFLOP/s (dense bf16 datasheet peak, or "
        + "MMFM_PEAK_TFLOPS); FLOPs from FlopCounterMode on the first (eager) step of each run.",
        f"Shapes: image {s['image']} px / patch {s['patch']}, vision {vision['hidden_size']} x "
        + f"{vision['num_hidden_layers']} layers, {vision['num_attention_heads']} heads, MLP {vision['intermediate_size']}; "
        + f"text {text['hidden_size']} x {text['num_hidden_layers']} layers, {text['num_attention_heads']} heads, MLP "
        + f"{text['intermediate_size']}, {s['seq']} tokens, vocab {s['vocab']}; projection {s['projection']}; "
        + f"batch {s['batch']}; {s['steps']} steps, the first {s['warmup']} untimed.",
        "Both: sdpa attention, causal text tower pooled at the end-of-text (last) token, quick-GELU, the same "
        + "random batch already on the device, AdamW (fused on GPU), no gradient clipping, loss not read back "
        + "during the timed steps.",
        "validate_inputs=True (mmfm's default) checks input values every forward, which synchronises the device.",
        "Peak memory: CUDA max allocated from model construction to the end of the run (weights, AdamW states, "
        + "activations); not measured on the CPU.",
    ]
    report = {"device": gpu, "peak_tflops": None if peak is None else peak / 1e12, "torch": torch.__version__,
              "transformers": __import__("transformers").__version__, "settings": s, "rows": rows,
              "ratios": ratios, "notes": notes}  # fmt: skip
    (output / "results.json").write_text(json.dumps(report, indent=2) + "\n")
    print("\n" + table(rows) + "\n\nNotes:\n" + "\n".join(f"- {n}" for n in notes))
    print(f"\nResults in {output / 'results.json'}")
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
