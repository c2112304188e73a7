"""Self-supervised pretraining of mmfm encoders, on one CPU, one GPU or many nodes.

    accelerate launch recipes/pretrain.py                                   # the embedded demo recipe
    accelerate launch recipes/pretrain.py --config recipes/configs/mae.yaml training.max_steps=2000
    accelerate launch --config_file recipes/accelerate/zero2.yaml recipes/pretrain.py --config ...
    mmfm-pretrain --config mae training.max_steps=2000        # installed: a shipped config by name
    accelerate launch -m mmfm.recipes.pretrain --config mae   # installed, under a launcher

Every run field can be overridden with key=value (see `mmfm.training.config`). The run folder gets
checkpoints (resumed automatically), TensorBoard logs, `metrics.json`, `loss.png` and the exported model
in `model/` (`model/<task>/` for multi-task runs), which `AutoModel.from_pretrained` loads.

SIGTERM or SIGINT (Ctrl-C), sent to the launcher or to any training process, stops every process after the
same step with a checkpoint, and they exit with 143 or 130; the same command continues the run. A signal
during the export or evaluation quits at once (the final checkpoint is complete; the same command exports
again); a second Ctrl-C quits at once without a checkpoint. See `mmfm.training.signals`.
"""

import logging
import os
import sys
from pathlib import Path

# Read before the slow imports: a launcher that dies meanwhile still stops this run (mmfm.training.signals).
LAUNCHER_PID = os.getppid()

from accelerate import Accelerator

from mmfm.training import (
    RunConfig,
    RunFolder,
    Trainer,
    build_optimizer,
    build_scheduler,
    build_tasks,
    combine_models,
    evaluate_continued,
    evaluate_exports,
    parse_command_line,
)
from mmfm.training.session import exit_if_stopped, recipe_session, seed_run

DEFAULT_CONFIG = Path(__file__).parent / "configs" / "default.yaml"
logger = logging.getLogger("mmfm.recipes.pretrain")


def main(argv: list[str] | None = None) -> dict:
    # 1. The run: a YAML recipe plus overrides, checked before anything is built.
    config = parse_command_line(sys.argv[1:] if argv is None else argv, default=DEFAULT_CONFIG)
    # 2. The Accelerator, logging and stop signals (SIGTERM/SIGINT stop every process after the same step with
    # a checkpoint, exit 143/130); a fresh run folder, or the same run to continue, held until the run ends.
    with recipe_session(config, LAUNCHER_PID) as (accelerator, run_folder):
        return train_and_export(config, accelerator, run_folder)


def train_and_export(config: RunConfig, accelerator: Accelerator, run_folder: RunFolder) -> dict:
    # 3. The seeds of every process; data, tokenizer and model of each objective; the optimizer and the
    # schedule over all of them.
    seed_run(config)
    tasks = build_tasks(config, accelerator)
    model = combine_models(tasks)
    optimizer = build_optimizer(model, config.training)
    scheduler = build_scheduler(optimizer, config.training)
    # 4. Train (continuing from the newest checkpoint when there is one), export, report.
    trainer = Trainer(config, accelerator, tasks, model, optimizer, scheduler, run_folder)
    trainer.resume()
    run_folder.record_start()  # from here on, the folder holds this run
    exit_if_stopped(trainer, trainer.train(), logger)
    exported = trainer.export(Path(config.output_dir) / "model")
    evaluation = evaluate_exports(accelerator, tasks, exported)
    # A continued run also probes the model it started from: what it forgot, what it learnt.
    continued = evaluate_continued(accelerator, tasks, exported, evaluation, Path(config.output_dir))
    metrics = trainer.finish(exported, evaluation, extra=continued)
    if accelerator.is_main_process:
        logger.info(
            "Done: %d steps, final loss %s, model in %s, metrics in %s/metrics.json",
            metrics["steps"], metrics["final_loss"], ", ".join(exported.values()), config.output_dir,
        )  # fmt: skip
    return metrics


def cli() -> int:
    """The `mmfm-pretrain` console script: exit status 0 once the run is done (`main` returns the metrics, which
    `sys.exit` would print and turn into status 1)."""
    main()
    return 0


if __name__ == "__main__":
    main()
