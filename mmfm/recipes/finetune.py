"""Supervised fine-tuning of an mmfm encoder with a downstream head, fully or with PEFT (LoRA, DoRA, IA3), on
the pretraining engine (Accelerate and DeepSpeed, checkpoints and exact resume, progress, throughput, MFU).

    accelerate launch recipes/finetune.py                                  # the default recipe (digits)
    accelerate launch recipes/finetune.py --config vision model.init_from=outputs/mae/model
    accelerate launch recipes/finetune.py --config text finetune.peft.method=lora training.max_steps=300
    mmfm-finetune --config audio                                          # installed: a shipped config by name

Shipped configs (`mmfm/recipes/configs/finetune/`): text, vision, audio, graph, timeseries, forecasting
(time series: the last steps of each series from the ones before, no label column), default. The run
folder gets checkpoints (resumed automatically), `best/` (the best validation step's trainable weights),
`adapter/` (PEFT; `AutoPeftModelFor<X>.from_pretrained` loads it) or `model/` (full fine-tuning, or the
adapter merged with `finetune.merge_adapter`), `metrics.json` (validation curve, best step, test metrics
of the best checkpoint, trainable parameters, peak memory, step time) and `loss.png`.
"""

import logging
import os
import sys
from pathlib import Path

# Read before the slow imports: a launcher that dies meanwhile still stops this run (mmfm.training.signals).
LAUNCHER_PID = os.getppid()

from accelerate import Accelerator

from mmfm.training import RunFolder, build_optimizer, build_scheduler
from mmfm.training.finetune_config import FinetuneConfig, parse_finetune_command_line
from mmfm.training.finetune_setup import build_finetune
from mmfm.training.finetune_trainer import FinetuneTrainer
from mmfm.training.pretrained import resolve_model_source
from mmfm.training.session import exit_if_stopped, recipe_session, seed_run

DEFAULT_CONFIG = Path(__file__).parent / "configs" / "finetune" / "default.yaml"
logger = logging.getLogger("mmfm.recipes.finetune")


def main(argv: list[str] | None = None) -> dict:
    # 1. The run: a YAML recipe plus overrides, checked before anything is built.
    config = parse_finetune_command_line(sys.argv[1:] if argv is None else argv, default=DEFAULT_CONFIG)
    # 2. The Accelerator, logging and stop signals (stop after the same step with a checkpoint); a fresh run
    # folder, or the same run to continue, held until the run ends.
    with recipe_session(config, LAUNCHER_PID) as (accelerator, run_folder):
        return finetune(config, accelerator, run_folder)


def finetune(config: FinetuneConfig, accelerator: Accelerator, run_folder: RunFolder) -> dict:
    # 3. Labelled data (train / validation carved from train / test), the head on the saved or a new encoder,
    # PEFT adapters on request; the optimizer trains what requires gradients.
    seed_run(config)  # and deterministic kernels with training.deterministic
    setup = build_finetune(config, accelerator)
    model = setup.task.model
    optimizer = build_optimizer(model, config.training)
    scheduler = build_scheduler(optimizer, config.training)
    # 4. Train with evaluations on the validation split (best weights kept, early stopping), continuing from
    # the newest checkpoint when there is one.
    trainer = FinetuneTrainer(
        config, accelerator, {"finetune": setup.task}, model, optimizer, scheduler, run_folder,
        validation=setup.data.validation, collate=setup.collate,
    )  # fmt: skip
    trainer.resume()
    run_folder.record_start()
    exit_if_stopped(trainer, trainer.train(), logger)
    # 5. The best checkpoint: scored on the test split, exported (adapter/ or model/), reported.
    test = trainer.score_best(setup.data.test)
    exported = trainer.export_finetuned(setup.adapter_base, config.finetune.merge_adapter)
    init_from = config.model.init_from  # recorded (with a Hub id's commit) for the model card
    source = {"init_from": resolve_model_source(init_from, "model.init_from").record()} if init_from else None
    metrics = trainer.finish(exported, extra=source)
    logger.info("Done: best step %s (validation %s %.4f), test %s, outputs %s", metrics["best_step"],
                trainer.metric, trainer.best["value"], test, exported)  # fmt: skip
    return metrics


def cli() -> int:
    """The `mmfm-finetune` console script: exit status 0 once the run is done (`main` returns the metrics, which
    `sys.exit` would print and turn into status 1)."""
    main()
    return 0


if __name__ == "__main__":
    main()
