"""Pretraining throughput on one GPU: the real recipe against Hugging Face reference models.

    python benchmarks/gpu_pretrain.py [--steps 40] [--output outputs/gpu_pretrain] [--smoke]

Trains base-size vision MAE (ViT-B/16, 224 px, mask 0.75, 8 x 512 decoder: `MAEConfig`'s defaults, given
to the recipe as `tasks.mae.objective_config.<field>=...` overrides) and text MLM (BERT-base shape,
sequence 512) for `--steps` steps in bf16 with `recipes/pretrain.py` launched by `accelerate launch`, once plain and once under DeepSpeed ZeRO-2 (one process), then trains transformers'
`ViTMAEForPreTraining` and `BertForMaskedLM` at the same shapes, batch and step count with a plain loop
(bf16 autocast, fused AdamW, clipping at 1.0) in this process. Reported per run: samples/s,
patches-or-tokens/s, TFLOP/s per device (FLOPs counted with `FlopCounterMode` on one real step), MFU
against the dense bf16 datasheet peak of `mmfm.training.metrics.peak_flops_per_second` (or
`MMFM_PEAK_TFLOPS`), peak memory, and the mmfm / HF samples/s ratio. The first `logging.log_every`
steps of every run are warm-up and are not timed. Prints a Markdown table, writes
`<output>/results.json` (run logs in `<output>/<name>.log`) and takes a few minutes on one H100.

`--smoke` runs the same flow on the CPU with tiny models (3 steps), to check the script without a GPU.

On a GPU image without deepspeed/datasets, carry the wheels that `bash ../shared/tools/gpu-wheels.sh`
builds into `.whl/` and install them before running (the command is in that script's header). The demo
corpus (vision digits and shapes, text corpus, tokenizer) must be under `$MMFM_HOME/demo`; when
`MMFM_HOME` is unset, `.cache/mmfm` of this checkout is used if it exists.
"""

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import BertConfig, BertForMaskedLM, ViTMAEConfig, ViTMAEForPreTraining

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
if "MMFM_HOME" not in os.environ and (ROOT / ".cache" / "mmfm").is_dir():
    os.environ["MMFM_HOME"] = str(ROOT / ".cache" / "mmfm")

from mmfm.data.demo import load_demo_tokenizer
from mmfm.models import MAEConfig
from mmfm.training.metrics import peak_flops_per_second

LAYERS = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")
ENCODER = {"base": dict(zip(LAYERS, (768, 12, 12, 3072))), "tiny": dict(zip(LAYERS, (32, 2, 4, 64)))}
# MAE's hyperparameters: `MAEConfig`'s defaults (mask 0.75, normalised pixel targets, the 8 x 512 decoder
# of ViTMAE's defaults) and its tiny preset's decoder. The recipe YAML's own small decoder is overridden.
MAE = {preset: {**MAEConfig().to_dict(), **MAEConfig.presets.get(preset, {})} for preset in ENCODER}
DECODER = {preset: {k: v for k, v in MAE[preset].items() if k.startswith("decoder_")} for preset in ENCODER}


def settings(args) -> dict:
    """Shapes and run lengths: base size in bf16 on the GPU, tiny in fp32 on the CPU for `--smoke`."""
    if args.smoke:
        return {"preset": "tiny", "image": 32, "patch": 4, "seq": 64, "mae_batch": 4, "mlm_batch": 4,
                "steps": 3, "warmup": 1, "precision": "no", "workers": 1}  # fmt: skip
    return {"preset": "base", "image": 224, "patch": 16, "seq": 512, "mae_batch": 128, "mlm_batch": 32,
            "steps": args.steps, "warmup": 10, "precision": "bf16", "workers": args.num_workers}  # fmt: skip


def launch_command(task: str, setting: str, s: dict, run_dir: Path) -> list[str]:
    """`accelerate launch ... recipes/pretrain.py` for one (task, setting), as an argument list."""
    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--config_file"]
    if setting == "zero2":
        launcher += ["recipes/accelerate/zero2.yaml", "--num_processes", "1"]
    else:
        launcher += ["recipes/accelerate/single_gpu.yaml"]
    if task == "mae":
        batch, arch = s["mae_batch"], f"{{image_size: {s['image']}, patch_size: {s['patch']}}}"
        # The objective's hyperparameters live in `objective_config`, not in the encoder's `model.config`.
        objective = [
            f"tasks.mae.objective_config.{key}={value}" for key, value in DECODER[s["preset"]].items()
        ]
    else:
        batch, arch, objective = s["mlm_batch"], f"{{max_position_embeddings: {s['seq']}}}", []
    overrides = [
        f"output_dir={run_dir}", "overwrite_output_dir=true", f"training.max_steps={s['steps']}",
        f'training.mixed_precision="{s["precision"]}"',  # quoted: YAML reads a bare `no` as false
        f"training.per_device_batch_size={batch}", "checkpointing.save_every=0",
        f"logging.log_every={s['warmup']}", "logging.report_to=[]", "logging.progress_bar=false",
        f"tasks.{task}.data.num_workers={s['workers']}", f"tasks.{task}.model.preset={s['preset']}",
        f"tasks.{task}.model.config={arch}",  # replaces the YAML's small-model dict entirely
        *objective,
    ]  # fmt: skip
    # metrics.json's throughput summary leaves out the first logged window: log_every = warm-up steps.
    if task == "mlm":
        overrides.append(f"tasks.mlm.data.max_length={s['seq']}")
    return launcher + ["recipes/pretrain.py", "--config", f"recipes/configs/{task}.yaml", *overrides]


def run_recipe(task: str, setting: str, s: dict, output: Path, env: dict) -> dict:
    name = f"{task}_{setting}"
    run_dir, log = output / name, output / f"{name}.log"
    command = launch_command(task, setting, s, run_dir)
    shown = shlex.join(["accelerate", "launch", *command[3:]])
    print(f"\n$ {shown}", flush=True)
    started = time.perf_counter()
    with open(log, "w") as handle:
        try:
            code = subprocess.run(command, check=False, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT,
                                  timeout=900).returncode  # fmt: skip
        except subprocess.TimeoutExpired:
            code = "timeout (900 s)"
    row = {"name": f"mmfm {task}", "setting": setting, "batch": s[f"{task}_batch"], "command": shown,
           "log": str(log), "wall_s": time.perf_counter() - started}  # fmt: skip
    metrics_file = run_dir / "metrics.json"
    if code != 0 or not metrics_file.is_file():
        lines = log.read_text(errors="replace").splitlines()
        # The launcher's own traceback can push the run's error out of the tail: name error lines first.
        errors = [line for line in lines[:-40] if line.split(":")[0].endswith(("Error", "Exception"))]
        tail = "\n".join([*errors[-5:], "...", *lines[-40:]])
        print(f"!! {name} FAILED (exit {code}); log {log}:\n{tail}", file=sys.stderr, flush=True)
        return {**row, "error": f"exit {code}"}
    metrics = json.loads(metrics_file.read_text())
    throughput = metrics["throughput"]
    unit = "patches_per_s" if task == "mae" else "tokens_per_s"
    print(f"   done in {row['wall_s']:.0f} s; final loss {metrics.get('final_loss')}", flush=True)
    return {**row, "samples_per_s": throughput["samples_per_s"], "units_per_s": throughput.get(unit),
            "tflops_per_s": throughput.get("tflops_per_s_per_device"), "mfu": throughput.get("mfu"),
            "peak_memory_gib": metrics.get("peak_memory_gib"), "final_loss": metrics.get("final_loss")}  # fmt: skip


def hf_reference(task: str, s: dict, vocab: int, device: torch.device, peak: float | None) -> dict:
    """The transformers model of `task` at the same shapes, trained with a plain loop on synthetic data."""
    size, batch = ENCODER[s["preset"]], s[f"{task}_batch"]
    torch.manual_seed(0)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    if task == "mae":  # norm_pix_loss as mmfm's default (HF's default is False; the cost is the same)
        mae = MAE[s["preset"]]
        config = ViTMAEConfig(image_size=s["image"], patch_size=s["patch"], mask_ratio=mae["mask_ratio"],
                              norm_pix_loss=mae["norm_pix_loss"], attn_implementation="sdpa", **size,
                              **DECODER[s["preset"]])  # fmt: skip
        model = ViTMAEForPreTraining(config)
        batch_inputs = {"pixel_values": torch.randn(batch, 3, s["image"], s["image"], device=device)}
        units = batch * (s["image"] // s["patch"]) ** 2
    else:  # dropout 0 as mmfm's text encoder (BERT's default is 0.1)
        config = BertConfig(vocab_size=vocab, max_position_embeddings=s["seq"], hidden_dropout_prob=0.0,
                            attention_probs_dropout_prob=0.0, attn_implementation="sdpa", **size)  # fmt: skip
        model = BertForMaskedLM(config)
        ids = torch.randint(5, vocab, (batch, s["seq"]), device=device)
        chosen = torch.rand(ids.shape, device=device) < 0.15
        labels = torch.where(chosen, ids, torch.full_like(ids, -100))
        batch_inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": labels}
        units = batch * s["seq"]
    model = model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.05, fused=device.type == "cuda")

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=s["precision"] == "bf16"):
            loss = model(**batch_inputs).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    with FlopCounterMode(display=False) as counter:  # the first warm-up step, counted
        step()
    for _ in range(s["warmup"] - 1):
        step()
    timed = s["steps"] - s["warmup"]
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for _ in range(timed):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = (time.perf_counter() - start) / timed
    flops_per_s = counter.get_total_flops() / seconds
    name = "HF ViTMAEForPreTraining" if task == "mae" else "HF BertForMaskedLM"
    result = {"name": name, "setting": "plain loop", "batch": batch, "samples_per_s": batch / seconds,
              "units_per_s": units / seconds, "tflops_per_s": flops_per_s / 1e12,
              "mfu": flops_per_s / peak if peak else None,
              "peak_memory_gib": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None,
              "parameters_m": sum(p.numel() for p in model.parameters()) / 1e6}  # fmt: skip
    return result


def fmt(value, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def table(rows: list[dict]) -> str:
    lines = ["| name | setting | batch | samples/s | patches or tokens/s | TFLOP/s per device | MFU | peak GiB | vs HF |",
             "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['name']} | {r['setting']} | {r['batch']} | FAILED ({r['error']}, see {r['log']}) "
                         "| | | | | |")  # fmt: skip
            continue
        mfu = fmt(None if r["mfu"] is None else 100 * r["mfu"], ".1f") + ("%" if r["mfu"] is not None else "")
        lines.append(f"| {r['name']} | {r['setting']} | {r['batch']} | {fmt(r['samples_per_s'], ',.1f')} | "
                     f"{fmt(r['units_per_s'], ',.0f')} | {fmt(r['tflops_per_s'], '.3g')} | {mfu} | "
                     f"{fmt(r['peak_memory_gib'], '.2f')} | {fmt(r.get('ratio_vs_hf'), '.2f')}x |")  # fmt: skip
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=40, help="steps per run; the first 10 are warm-up")
    parser.add_argument("--output", default="outputs/gpu_pretrain", help="run folders, logs and results.json")
    parser.add_argument("--num-workers", type=int, default=4, help="DataLoader workers of the mmfm runs")
    parser.add_argument("--smoke", action="store_true", help="tiny models on the CPU, 3 steps")
    args = parser.parse_args()
    s = settings(args)
    if s["steps"] <= s["warmup"]:
        parser.error(f"--steps must be more than the {s['warmup']} warm-up steps")
    if not args.smoke and not torch.cuda.is_available():
        print("No CUDA device: this benchmark needs a GPU (use --smoke to check the script on a CPU).")
        return 2
    device = torch.device("cpu" if args.smoke else "cuda")
    output = (ROOT / args.output).resolve()
    output.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PYTHONUNBUFFERED": "1",
           "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT),
           os.environ.get("PYTHONPATH")]))}  # fmt: skip
    if args.smoke:
        env.update(CUDA_VISIBLE_DEVICES="", DS_ACCELERATOR=env.get("DS_ACCELERATOR", "cpu"))
    vocab = len(load_demo_tokenizer())  # fails early, with a build hint, without the demo corpus
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    peak = peak_flops_per_second(device, "bf16") if device.type == "cuda" else None
    print(f"Device: {gpu}; MFU peak: {fmt(None if peak is None else peak / 1e12, '.1f')} TFLOP/s dense bf16; "
          f"{s['steps']} steps per run, the first {s['warmup']} untimed; MMFM_HOME={os.environ.get('MMFM_HOME')}")  # fmt: skip
    rows = []
    for task in ("mae", "mlm"):
        mine = [run_recipe(task, setting, s, output, env) for setting in ("plain", "zero2")]
        print(f"\nHF reference for {task} ...", flush=True)
        reference = hf_reference(task, s, vocab, device, peak)
        reference["ratio_vs_hf"] = 1.0
        for row in mine:
            if "error" not in row:
                row["ratio_vs_hf"] = row["samples_per_s"] / reference["samples_per_s"]
        rows += [*mine, reference]
    peak_text = fmt(None if peak is None else peak / 1e12, ".1f")
    mae = MAE[s["preset"]]
    notes = [
        f"Device {gpu}; MFU = achieved FLOP/s per device / {peak_text} TFLOP/s (dense bf16 datasheet peak, or "
        + "MMFM_PEAK_TFLOPS); FLOPs from FlopCounterMode on one real step (MAE's dropped patches not counted).",
        f"Shapes: MAE {s['preset']} {s['image']}px/{s['patch']} mask {mae['mask_ratio']}, decoder "
        + f"{mae['decoder_num_hidden_layers']} x {mae['decoder_hidden_size']}; MLM {s['preset']} seq {s['seq']}, "
        + f"vocab {vocab}; precision {s['precision']}; {s['steps']} steps, the first {s['warmup']} untimed.",
        "mmfm rows run recipes/pretrain.py end to end: demo images/texts are decoded and processed on the fly by "
        + "DataLoader workers and the loss is read back every step; the HF rows train on synthetic tensors "
        + "already on the device, which favours HF.",
        "ZeRO-2 with one process shards nothing: it shows DeepSpeed's overhead (bf16 weights, fp32 master "
        + "copy). Both mmfm settings are compared with the same HF plain loop.",
        "mmfm's text encoder uses rotary positions, BERT learned ones; HF BERT runs with dropout 0 like mmfm.",
    ]
    report = {"device": gpu, "peak_tflops": None if peak is None else peak / 1e12, "torch": torch.__version__,
              "transformers": __import__("transformers").__version__, "settings": s, "rows": rows, "notes": notes}  # fmt: skip
    (output / "results.json").write_text(json.dumps(report, indent=2) + "\n")
    print("\n" + table(rows) + "\n\nNotes:\n" + "\n".join(f"- {n}" for n in notes))
    print(f"\nResults in {output / 'results.json'}")
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
