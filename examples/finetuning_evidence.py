"""Evidence for fine-tuning: the shipped fine-tuning configs (`recipes/finetune.py --config <modality>`) run
from a pretrained export and from random weights of the same architecture, with all labels and with 10 %,
and with a LoRA adapter, at one seed and one step budget.

    python examples/finetuning_evidence.py --modality vision         # one modality, five runs
    python examples/finetuning_evidence.py --modality all --jobs 2   # every modality, two runs at a time

Per modality, five variants of the shipped config (`mmfm/recipes/configs/finetune/<modality>.yaml`):

    pretrained         model.init_from=<export>, full fine-tuning, all labels
    random             the export's encoder fields as `model.config` (only the weights differ), all labels
    pretrained_10pct   as pretrained, data.label_fraction=0.1
    random_10pct       as random, data.label_fraction=0.1
    pretrained_lora    as pretrained, finetune.peft.method=lora (default target modules), --lora-lr

Full fine-tuning keeps the config's learning rate; LoRA gets `--lora-lr` (5e-3: an adapter of rank 8 learns
slowly at a full fine-tuning rate). Each run goes through the real recipe, `accelerate launch --config_file
recipes/accelerate/cpu.yaml recipes/finetune.py ...` in its own process (so `peak_memory_bytes`, the
process's peak resident set on the CPU, is the run's own), into `outputs/finetune_evidence/<modality>/<variant>/`
(log: `<variant>.log` beside it). `--in-process` calls the recipe's `main(argv)` here instead (fast, for smoke
tests; peak memory is then the whole process's). The exports are `<pretrained>/<modality>/model`, e.g. from
`recipes/pretrain.py` with mae.yaml, mlm.yaml, ssast.yaml, graphmae.yaml, ts_masked.yaml.

Results accumulate in `outputs/finetune_evidence/summary.json` (one entry per run, earlier modalities kept),
and the Markdown table of all of them is printed and written to `outputs/finetune_evidence/table.md`.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
MODALITIES = ("vision", "text", "graph", "timeseries", "audio")
VARIANTS = ("pretrained", "random", "pretrained_10pct", "random_10pct", "pretrained_lora")
LABEL_FRACTION = 0.1
# Batch size of the 10 % runs where the config's is larger than the labelled rows: newsgroups keeps 136
# training rows after validation, 10 % of them is 13, under text.yaml's batch of 16.
SMALL_DATA_BATCH = {"text": 8}
# Fields every transformers config has (ids, dtype, bookkeeping) and the objective's: not the encoder's
# architecture, so they are not passed as `model.config` to the random-init run.
NOT_ARCHITECTURE = {"pretraining_config", "pretraining_objective"}


def architecture_fields(export: Path) -> dict:
    """The encoder fields of the export's `config.json` (width, depth, heads, patching, positions, pooling,
    vocabulary, ...): the modality config's own fields, less transformers' generic ones and the objective's."""
    from transformers import AutoConfig, PretrainedConfig

    from mmfm.modalities import get_modality, modality_of_config

    saved = AutoConfig.from_pretrained(export)
    spec = get_modality(modality_of_config(saved))
    generic = set(PretrainedConfig().to_dict())
    known = set(spec.config_class().to_dict()) - generic - NOT_ARCHITECTURE
    return {k: v for k, v in saved.to_dict().items() if k in known and not k.startswith("_")}


def variant_overrides(modality: str, variant: str, export: Path, lora_lr: float) -> list[str]:
    """The `key=value` overrides of one variant on top of the shipped config."""
    overrides = []
    if variant.startswith("pretrained"):
        overrides.append(f"model.init_from={export}")
    else:
        fields = architecture_fields(export)
        # YAML flow style, as the override parser reads it (JSON's 1e-05 would read back as a string).
        flow = yaml.safe_dump(fields, default_flow_style=True, width=float("inf")).strip()
        overrides.append(f"model.config={flow}")
        if (export / "tokenizer_config.json").is_file():  # text: the export's tokenizer, not a new one
            overrides.append(f"model.tokenizer={export}")
    if variant.endswith("_10pct"):
        overrides.append(f"data.label_fraction={LABEL_FRACTION}")
        if modality in SMALL_DATA_BATCH:
            overrides.append(f"training.per_device_batch_size={SMALL_DATA_BATCH[modality]}")
    if variant.endswith("_lora"):
        overrides += ["finetune.peft.method=lora", f"training.learning_rate={lora_lr}"]
    return overrides


def recipe_args(modality: str, variant: str, export: Path, out: Path, args) -> list[str]:
    argv = ["--config", modality, f"output_dir={out}", "overwrite_output_dir=true", f"seed={args.seed}",
            "logging.progress_bar=false", "logging.report_to=[]", *variant_overrides(modality, variant, export, args.lora_lr)]  # fmt: skip
    if args.steps is not None:
        argv.append(f"training.max_steps={args.steps}")
    return argv + list(args.set)


def run_env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONUNBUFFERED="1",
               OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))  # fmt: skip
    env.setdefault("DS_ACCELERATOR", "cpu")
    return env


def launch(argv: list[str], log: Path, args) -> None:
    """`accelerate launch --config_file <cpu.yaml> recipes/finetune.py argv`, output to `log`."""
    accelerate = Path(sys.executable).with_name("accelerate")
    command = [str(accelerate), "launch", "--config_file", str(REPO / args.accelerate_config),
               str(REPO / "recipes" / "finetune.py"), *argv]  # fmt: skip
    with open(log, "w") as out:
        out.write(" ".join(command) + "\n")
        out.flush()
        result = subprocess.run(
            command, check=False, cwd=REPO, env=run_env(args.threads), stdout=out, stderr=subprocess.STDOUT
        )
    if result.returncode != 0:
        raise RuntimeError(f"run failed ({result.returncode}), see {log}:\n{log.read_text()[-3000:]}")


def run_in_process(argv: list[str]) -> None:
    """The recipe's `main(argv)` in this process, with a fresh Accelerator state (as tests/training do)."""
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    try:
        importlib.import_module("mmfm.recipes.finetune").main(argv)
    finally:
        AcceleratorState._reset_state(True)
        GradientState._reset_state()


def one_run(modality: str, variant: str, args) -> dict:
    export = Path(args.pretrained) / modality / "model"
    if not (export / "config.json").is_file():
        raise FileNotFoundError(f"No export at {export}: pretrain one, or point --pretrained at the exports.")
    out = Path(args.output) / modality / variant
    argv = recipe_args(modality, variant, export, out, args)
    out.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    if args.in_process:
        run_in_process(argv)
    else:
        launch(argv, out.parent / f"{variant}.log", args)
    seconds = time.perf_counter() - start
    return summarise(modality, variant, out, argv, seconds)


def summarise(modality: str, variant: str, out: Path, argv: list[str], seconds: float) -> dict:
    metrics = json.loads((out / "metrics.json").read_text())
    config = _yaml(out / "run_config.yaml")
    metric = metrics["metric_for_best"]
    test_metric = metric if metric in metrics["test"] else "accuracy"
    return {
        "modality": modality, "variant": variant, "subset": config["data"]["subset"],
        "label_fraction": config["data"]["label_fraction"], "peft": config["finetune"]["peft"]["method"],
        "learning_rate": config["training"]["learning_rate"],
        "batch_size": config["training"]["per_device_batch_size"], "max_steps": config["training"]["max_steps"],
        "init_from": config["model"]["init_from"], "test_metric": test_metric,
        "test": metrics["test"], "steps": metrics["steps"], "best_step": metrics["best_step"],
        "stopped_early": metrics["stopped_early"], "trainable_parameters": metrics["trainable_parameters"],
        "total_parameters": metrics["total_parameters"], "peak_memory_bytes": metrics["peak_memory_bytes"],
        "mean_step_seconds": metrics["mean_step_seconds"], "wall_seconds": seconds,
        "command": "accelerate launch --config_file recipes/accelerate/cpu.yaml recipes/finetune.py "
        + " ".join(f"'{a}'" if "{" in a or " " in a else a for a in argv),
    }  # fmt: skip


def _yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def markdown_table(results: list[dict]) -> str:
    """One row per run, in modality and variant order."""
    order = {(m, v): (i, j) for i, m in enumerate(MODALITIES) for j, v in enumerate(VARIANTS)}
    rows = sorted(results, key=lambda r: order.get((r["modality"], r["variant"]), (99, 99)))
    lines = [
        "| modality | data | variant | test metric | trainable / total params | peak memory | mean step | steps / best |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        data = f"{r['subset']}, {r['label_fraction']:.0%} labels"
        if r["modality"] in SMALL_DATA_BATCH and r["label_fraction"] < 1:
            data += f" (batch {r['batch_size']})"
        variant = r["variant"].replace("_10pct", "").replace("_lora", "")
        variant += (
            f", LoRA (lr {r['learning_rate']:g})"
            if r["peft"] == "lora"
            else f", full (lr {r['learning_rate']:g})"
        )
        stop = " (early stop)" if r["stopped_early"] else ""
        lines.append(
            f"| {r['modality']} | {data} | {variant} | {r['test_metric']} {r['test'][r['test_metric']]:.3f} "
            f"| {_count(r['trainable_parameters'])} / {_count(r['total_parameters'])} "
            f"| {r['peak_memory_bytes'] / 2**30:.2f} GiB | {1000 * r['mean_step_seconds']:.0f} ms "
            f"| {r['steps']} / {r['best_step']}{stop} |"
        )  # fmt: skip
    return "\n".join(lines) + "\n"


def _count(n: int) -> str:
    return f"{n / 1e6:.2f}M" if n >= 1e5 else f"{n / 1e3:.1f}k"


def check_same_architecture(results: list[dict]) -> list[str]:
    """Warnings where a random-init run's parameter count differs from its pretrained twin's."""
    total = {(r["modality"], r["variant"]): r["total_parameters"] for r in results}
    return [
        f"{m}: random init has {total[(m, r)]} parameters, pretrained {total[(m, p)]}"
        for m in MODALITIES
        for p, r in (("pretrained", "random"), ("pretrained_10pct", "random_10pct"))
        if (m, p) in total and (m, r) in total and total[(m, p)] != total[(m, r)]
    ]


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--modality", default="all", choices=["all", *MODALITIES])
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of {VARIANTS}")
    parser.add_argument("--steps", type=int, default=None, help="training.max_steps (default: the config's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an extra recipe override for every run (repeatable), e.g. training.per_device_batch_size=8",
    )
    parser.add_argument("--lora-lr", type=float, default=5e-3, help="learning rate of the LoRA variant")
    parser.add_argument(
        "--pretrained", default="outputs/pretrained", help="folder of <modality>/model exports"
    )
    parser.add_argument("--output", default="outputs/finetune_evidence")
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time (launched runs only)")
    parser.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of each launched run")
    parser.add_argument("--accelerate-config", default="recipes/accelerate/cpu.yaml")
    parser.add_argument("--reuse", action="store_true", help="keep runs whose metrics.json exists")
    parser.add_argument(
        "--in-process", action="store_true", help="call the recipe's main() here (smoke tests)"
    )
    args = parser.parse_args(argv)
    variants = [v for v in args.variants.split(",") if v]
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        parser.error(f"--variants: unknown {unknown}; choose from {VARIANTS}")
    modalities = list(MODALITIES) if args.modality == "all" else [args.modality]
    runs = [(m, v) for m in modalities for v in variants]
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    start, results, failures, lock = time.perf_counter(), [], [], threading.Lock()
    summary = output / "summary.json"
    earlier = (
        {(r["modality"], r["variant"]): r for r in json.loads(summary.read_text())["runs"]}
        if summary.is_file()
        else {}
    )

    def run_and_record(run: tuple[str, str]) -> dict | None:
        modality, variant = run
        previous = output / modality / variant / "metrics.json"
        try:
            if args.reuse and previous.is_file():  # a finished run of an earlier invocation
                result = earlier.get((modality, variant)) or summarise(
                    modality, variant, previous.parent, [], float("nan")
                )
            else:
                result = one_run(modality, variant, args)
        except (RuntimeError, FileNotFoundError) as err:  # the other runs go on; the failures are listed
            with lock:
                failures.append(f"{modality}/{variant}: {err}")
            print(f"{modality}/{variant} FAILED: {str(err)[-2000:]}", flush=True)
            return None
        with lock:  # the summary and table are rewritten after every run: an interrupted sweep keeps its rows
            results.append(report(result))
            write_summary(output, results, time.perf_counter() - start)
        return result

    if args.in_process or args.jobs == 1:
        for run in runs:
            run_and_record(run)
    else:
        with ThreadPoolExecutor(args.jobs) as pool:
            list(pool.map(run_and_record, runs))
    merged = write_summary(output, results, time.perf_counter() - start)
    print(markdown_table(merged))
    print(
        f"{len(results)} run(s) in {(time.perf_counter() - start) / 60:.1f} min; summary {output / 'summary.json'}"
    )
    for warning in check_same_architecture(merged):
        print("WARNING:", warning)
    if failures:
        sys.exit(f"{len(failures)} run(s) failed: " + "; ".join(f.split(":")[0] for f in failures))
    return results


def write_summary(output: Path, results: list[dict], seconds: float) -> list[dict]:
    """`summary.json` (this invocation's runs over the earlier ones of other modalities and variants) and
    `table.md` of all of them; returns the merged runs."""
    path = output / "summary.json"
    earlier = json.loads(path.read_text())["runs"] if path.is_file() else []
    done = {(r["modality"], r["variant"]) for r in results}
    merged = [r for r in earlier if (r["modality"], r["variant"]) not in done] + results
    warnings = check_same_architecture(merged)
    path.write_text(json.dumps({"runs": merged, "last_invocation_seconds": seconds, "warnings": warnings},
                               indent=2) + "\n")  # fmt: skip
    (output / "table.md").write_text(markdown_table(merged))
    return merged


def report(result: dict) -> dict:
    print(f"{result['modality']}/{result['variant']}: test {result['test_metric']} "
          f"{result['test'][result['test_metric']]:.3f}, {result['steps']} steps (best {result['best_step']}), "
          f"{result['wall_seconds']:.0f} s", flush=True)  # fmt: skip
    return result


if __name__ == "__main__":
    main()
