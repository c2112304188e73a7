"""Self-supervised pretraining of mmfm encoders, on one CPU, one GPU or many nodes.

    accelerate launch recipes/pretrain.py                                   # the embedded demo recipe
    accelerate launch recipes/pretrain.py --config recipes/configs/mae.yaml training.max_steps=2000
    accelerate launch --config_file recipes/accelerate/zero2.yaml recipes/pretrain.py --config ...

Every run field can be overridden with key=value (see `mmfm.training.config`). The run folder gets
checkpoints (resumed automatically), TensorBoard logs, `metrics.json`, `loss.png` and the exported model
in `model/` (`model/<task>/` for multi-task runs), which `AutoModel.from_pretrained` loads.
"""

import logging
import os
import sys
from pathlib import Path

import torch
from accelerate.utils import set_seed

from mmfm.training import (
    Trainer,
    build_accelerator,
    build_optimizer,
    build_scheduler,
    build_tasks,
    combine_models,
    evaluate_exports,
    parse_command_line,
    prepare_output_dir,
)

DEFAULT_CONFIG = Path(__file__).parent / "configs" / "default.yaml"


def main(argv: list[str] | None = None) -> dict:
    # 1. The run: a YAML recipe plus overrides, checked before anything is built.
    config = parse_command_line(sys.argv[1:] if argv is None else argv, default=DEFAULT_CONFIG)
    accelerator = build_accelerator(config)
    logging.basicConfig(
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        level=logging.INFO if accelerator.is_main_process else logging.WARNING,
    )
    # 2. A fresh run folder, or the same run to continue; then the seeds of every process.
    prepare_output_dir(config, accelerator)
    set_seed(config.seed, device_specific=True)
    if config.training.deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS refuses determinism without it
        torch.use_deterministic_algorithms(True)
    # 3. Data, tokenizer and model of each objective; the optimizer and the schedule over all of them.
    tasks = build_tasks(config, accelerator)
    model = combine_models(tasks)
    optimizer = build_optimizer(model, config.training)
    scheduler = build_scheduler(optimizer, config.training)
    # 4. Train (continuing from the newest checkpoint when there is one), export, report.
    trainer = Trainer(config, accelerator, tasks, model, optimizer, scheduler)
    trainer.resume()
    if not trainer.train():
        accelerator.end_training()
        if accelerator.is_main_process:
            logging.getLogger("recipes.pretrain").warning(
                "Stopped by SIGTERM at step %d; checkpoint saved. Run the same command to continue.",
                trainer.step,
            )
        sys.exit(143)
    exported = trainer.export(Path(config.output_dir) / "model")
    evaluation = evaluate_exports(accelerator, tasks, exported)
    metrics = trainer.finish(exported, evaluation)
    if accelerator.is_main_process:
        logging.getLogger("recipes.pretrain").info(
            "Done: %d steps, final loss %s, model in %s, metrics in %s/metrics.json",
            metrics["steps"], metrics["final_loss"], ", ".join(exported.values()), config.output_dir,
        )  # fmt: skip
    return metrics


if __name__ == "__main__":
    main()
