"""The training loop: pick a task, accumulate its micro-batches, clip, step, schedule, log, save.

Randomness is reproducible across a kill and resume: data order comes from the seed and the stream
positions, text masks from a generator seeded per micro-batch, and everything else (model masks,
dropout) from the global generators, which Accelerate saves and restores with each checkpoint.
"""

from __future__ import annotations

import inspect
import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import DistributedType, gather_object
from tqdm.auto import tqdm

from ..data import BadRowCounter, BadRowLimits
from .checkpointing import checkpoint_name, load_checkpoint, newest_intact_checkpoint, save_checkpoint
from .collective import any_process
from .config import RunConfig
from .export import export_models
from .metrics import ThroughputMeter, count_flops, peak_flops_per_second, peak_memory_bytes
from .plots import plot_loss_curve
from .run_folder import RunFolder, run_config_text
from .setup import Task, tracker_config
from .signals import STOP, STOP_SIGNALS

logger = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
    """Too many steps had a NaN or infinite loss."""


class Trainer:
    """Runs `config.training.max_steps` optimizer steps of `model` (prepared here) over `tasks`.

    Subclasses (fine-tuning) extend it through `after_step`, `_trainer_state`/`load_extra_state`,
    `plotted_history` and `metrics_summary`; `kind` names the run in the progress bar and the plot.

    Args:
        config: the run.
        accelerator: from `build_accelerator`.
        tasks: from `build_tasks`.
        model: the task's model or a `MultiTaskModel`; `optimizer` and `scheduler` built on it.
    """

    kind = "pretraining"

    def __init__(
        self, config: RunConfig, accelerator: Accelerator, tasks: dict[str, Task], model, optimizer, scheduler,
        run_folder: RunFolder | None = None,
    ):  # fmt: skip
        self.config, self.accelerator, self.tasks = config, accelerator, tasks
        self.run_folder = run_folder
        self.output_dir = Path(config.output_dir)
        self.multi_task = len(tasks) > 1
        self.deepspeed = accelerator.distributed_type == DistributedType.DEEPSPEED
        if self.deepspeed and (self.multi_task or any(task.section.binds for task in tasks.values())):
            _fill_zero3_buckets(accelerator, tasks)
        self.model, self.optimizer = accelerator.prepare(model, optimizer)
        # Stepped here once per optimizer step; its state travels as JSON in the trainer state (Accelerate
        # would pickle a registered object and unpickle it with `weights_only=False` on resume).
        self.scheduler = scheduler
        self.step = 0
        self.saved_step: int | None = None  # the step of the newest checkpoint of this run
        self.counters = {"micro_batches": 0, "nonfinite_steps": 0, "skipped_samples": 0, "samples": 0}
        # Bad rows per task on this process, capped by its data section (in a row, and per epoch).
        self.bad_rows = {
            name: BadRowCounter(BadRowLimits.of(task.section.data, self.data_field(name)))
            for name, task in tasks.items()
        }
        self.history: list[dict[str, Any]] = []
        self.resumed_from: str | None = None
        self.train_seconds = 0.0
        # Set by `_agree` when a stop signal reached any process: the signal every process stops on.
        self._stop_agreed, self.stopped_by = False, None
        units = {task.unit for task in tasks.values()}
        self.unit = units.pop() if len(units) == 1 else "items"
        peak = peak_flops_per_second(accelerator.device, config.training.mixed_precision)
        self.meter = ThroughputMeter(accelerator.num_processes, peak, self.unit)
        self._window = self._new_window()
        self._weights = torch.tensor([t.section.weight for t in tasks.values()], dtype=torch.float64)

    # ------------------------------------------------------------------------------------------ resume

    def resume(self) -> None:
        """Continue from a checkpoint when `checkpointing.resume` asks for it (`auto`: the newest)."""
        resume = self.config.checkpointing.resume
        if resume == "none":
            return
        if resume == "auto":
            folder = newest_intact_checkpoint(self.accelerator, self.output_dir / "checkpoints")
            if folder is None:
                return
        else:
            folder = Path(resume)
        state, self.history = load_checkpoint(self.accelerator, folder)
        self.step = self.saved_step = int(state["step"])
        self.counters.update(state["counters"])
        self.train_seconds = float(state.get("train_seconds", 0.0))
        self.scheduler.load_state_dict(state["scheduler"])
        for name, position in state["streams"].items():
            self.tasks[name].stream.load_state_dict(position)
        self.load_extra_state(state)
        self.resumed_from = str(folder)
        logger.info("Resumed from %s at step %d.", folder, self.step)

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Read what a subclass added to `_trainer_state` (fine-tuning: its evaluations) back on resume."""

    def _trainer_state(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "counters": dict(self.counters),
            "train_seconds": self.train_seconds,
            "scheduler": self.scheduler.state_dict(),
            "streams": {name: task.stream.state_dict() for name, task in self.tasks.items()},
        }

    def export(self, folder: Path) -> dict[str, str]:
        """Export every task's model (see `export_models`); DeepSpeed runs in bf16/fp16 export the float32
        master weights of the final checkpoint, which `train` always writes."""
        if self.run_folder is not None:
            self.run_folder.ensure()
        fp32_checkpoint = None
        if self.deepspeed and self.config.training.mixed_precision != "no":
            fp32_checkpoint = self.output_dir / "checkpoints" / checkpoint_name(self.step)
        return export_models(self.accelerator, self.model, self.tasks, folder, fp32_checkpoint)

    def save(self) -> Path:
        if self.run_folder is not None:
            self.run_folder.ensure()
        folder = save_checkpoint(
            self.accelerator, self.output_dir / "checkpoints", self.step, self._trainer_state(), self.history,
            self.config.checkpointing.keep_last, run_config_text(self.config),
        )  # fmt: skip
        self.saved_step = self.step
        return folder

    # ------------------------------------------------------------------------------------------ loop

    def train(self) -> bool:
        """Train to `training.max_steps`; returns False when SIGTERM or SIGINT stopped the run early: every
        process stopped after the same step and saved it, the same command continues, and `stopped_by` is
        the signal (see `signals`; the recipe installs the handlers before it builds the data and model)."""
        installed_here = not STOP.installed and STOP.install()  # a Trainer used without the recipe
        try:
            finished = self._train()
            if finished:  # a signal during the final save: stop there too, on every process
                self._agree(torch.zeros((), device=self.accelerator.device))
                finished = not self._stop_agreed
        finally:
            if installed_here:
                STOP.uninstall()
        if finished and STOP.installed:
            STOP.quit_at_once()  # the final checkpoint is complete: a signal now ends the export at once
        return finished

    def _train(self) -> bool:
        training, checkpointing = self.config.training, self.config.checkpointing
        if self.config.logging.report_to and self.config.logging.report_to != ["none"]:
            self.accelerator.init_trackers("mmfm", config=tracker_config(self.config))
        bar = tqdm(
            total=training.max_steps, initial=self.step, desc=self.kind, unit="step", dynamic_ncols=True,
            disable=not (self.accelerator.is_main_process and self.config.logging.progress_bar),
        )  # fmt: skip
        self.model.train()
        postfix: dict[str, str] = {}
        while self.step < training.max_steps:
            started = time.perf_counter()
            result = self._guarded_step()
            self.step += 1
            seconds = time.perf_counter() - started
            self.train_seconds += seconds
            self._account(result, seconds)
            if self.step % self.config.logging.log_every == 0 or self.step == training.max_steps:
                record = self._log()
                postfix["samples/s"] = f"{record.get('samples_per_s', 0):.1f}"
            postfix.update(
                loss=f"{result['loss']:.4f}", **({"task": result["task"]} if self.multi_task else {})
            )
            bar.set_postfix(postfix, refresh=False)
            bar.update(1)
            done = self.after_step()  # before the checkpoint, which then records what it decided
            if (checkpointing.save_every and self.step % checkpointing.save_every == 0) or self._stop_agreed:
                self.save()
            if self._stop_agreed:
                bar.close()
                return False
            if done:
                break
        bar.close()
        if self.saved_step != self.step:
            self.save()  # the end state, so a longer run can continue from it
        return True

    def data_field(self, task: str) -> str:
        """The config section of a task's data, for messages."""
        return f"tasks.{task}.data"

    def after_step(self) -> bool:
        """Called on every process after each optimizer step; True ends the run early, as if `max_steps` were
        reached (fine-tuning evaluates here and stops early). Pretraining runs to `max_steps`."""
        return False

    def _guarded_step(self) -> dict[str, Any]:
        try:
            return self._optimizer_step()
        except torch.OutOfMemoryError as err:
            raise RuntimeError(self._oom_message()) from err
        except RuntimeError as err:
            if "can't allocate memory" in str(err) or "out of memory" in str(err).lower():
                raise RuntimeError(self._oom_message()) from err
            raise

    def _oom_message(self) -> str:
        t = self.config.training
        smaller = max(1, t.per_device_batch_size // 2)
        return (
            f"Out of memory at step {self.step + 1} with training.per_device_batch_size={t.per_device_batch_size}. "
            f"Try training.per_device_batch_size={smaller} "
            f"training.gradient_accumulation_steps={t.gradient_accumulation_steps * 2} (the same rows per step), "
            "training.gradient_checkpointing=true, or training.mixed_precision=bf16."
        )

    def _pick_task(self) -> Task:
        """The task of this step: drawn by weight from a generator seeded by the step, so every process
        trains the same task in the same step, and a resumed run draws what the first run would have."""
        if not self.multi_task:
            return next(iter(self.tasks.values()))
        generator = torch.Generator().manual_seed(self.config.seed * 1_000_003 + self.step)
        index = int(torch.multinomial(self._weights, 1, generator=generator))
        return list(self.tasks.values())[index]

    def _optimizer_step(self) -> dict[str, Any]:
        task = self._pick_task()
        losses: dict[str, list[float]] = {}
        nonfinite, grad_norm = False, None
        samples = units = flops = 0
        self._deepspeed_skipped = self.model.skipped_steps if self.deepspeed else 0
        # The objective's per-step arguments (e.g. DropPos's decaying sigma, MLM's sparse prediction).
        step_kwargs = task.objective.step_kwargs(
            getattr(task.model, "objective", None), self.step / self.config.training.max_steps
        )
        for _ in range(self.config.training.gradient_accumulation_steps):
            inputs, rows = self._agreed_inputs(task)
            step_units = task.count_units(inputs)
            inputs.update(step_kwargs)
            with self.accelerator.accumulate(self.model):
                named, finite, step_flops = self._forward_backward(task, inputs, step_units)
                for key, value in named.items():
                    losses.setdefault(key, []).append(value)
                nonfinite |= not finite
                if self.accelerator.sync_gradients:
                    applied, grad_norm = self._apply_gradients(nonfinite)
                    nonfinite |= not applied
            samples += rows
            units += step_units
            flops += step_flops if step_flops is not None else (task.flops_per_unit or 0) * step_units
        self.scheduler.step()
        if nonfinite:
            self.counters["nonfinite_steps"] += 1
            self._check_nonfinite_limit()
        means = {key: sum(values) / len(values) for key, values in losses.items()}
        scheduled = {key: float(value) for key, value in step_kwargs.items() if isinstance(value, float)}
        return {"task": task.name, "loss": means.pop("loss"), "parts": means, "finite": not nonfinite,
                "samples": samples, "units": units, "flops": flops if task.flops_per_unit else None,
                "grad_norm": grad_norm, "scheduled": scheduled}  # fmt: skip

    def _agreed_inputs(self, task: Task) -> tuple[dict[str, torch.Tensor], int]:
        """`_next_inputs` on every process, or the same error on every process: a data error raised on one
        process alone would leave the others waiting in the next collective until it times out."""
        error: Exception | None = None
        try:
            result = self._next_inputs(task)
        except (ValueError, RuntimeError, OSError) as err:
            if self.accelerator.num_processes == 1:
                raise
            error = err
        if any_process(self.accelerator, error is not None):
            messages = gather_object([None if error is None else f"{type(error).__name__}: {error}"])
            if error is not None:
                raise error
            rank, message = next((r, m) for r, m in enumerate(messages) if m is not None)
            raise ValueError(f"Process {rank} stopped on its data, so every process stops: {message}")
        return result

    def _next_inputs(self, task: Task) -> tuple[dict[str, torch.Tensor], int]:
        """The next non-empty batch of `task` as model inputs on the device, and its number of rows. Skipped
        rows count in `skipped_samples` and against the task's caps (`self.bad_rows`).

        Raises:
            TooManyBadRows: (a `ValueError`) more bad rows than `tasks.<name>.data.max_bad_rows_in_a_row` in a
                row (batches without a usable row), or than `max_bad_rows` in one epoch on this process; it
                names the first and the last of them (row, column, value, error).
        """
        bad_rows = self.bad_rows[task.name]
        # Capped: a batch without a usable row adds its skipped rows (at least one) to the run of bad rows,
        # which `bad_rows.bad` stops past `max_bad_rows_in_a_row`; a batch without any row raises below.
        while True:
            batch = next(task.stream)
            self.counters["skipped_samples"] += batch["num_skipped"]
            epoch = task.stream.epoch  # the epoch this batch belongs to
            if bad_rows.pass_key != epoch:
                bad_rows.new_pass(epoch, f" in epoch {epoch} on this process")
            bad_rows.bad(batch.get("bad_rows", []), batch["num_skipped"])
            if batch["inputs"]:
                bad_rows.good()
                break
            if not batch["num_skipped"]:  # would spin forever; the collator never returns such a batch
                raise RuntimeError(f"`tasks.{task.name}.data` gave an empty batch without skipped rows.")
        inputs = batch["inputs"]
        if task.text_collator is not None:
            # One generator per micro-batch, seeded by its index on this process: the same masks after a resume.
            seed = (self.config.seed * 1_000_003 + self.accelerator.process_index) * 1_000_003
            generator = torch.Generator().manual_seed((seed + self.counters["micro_batches"]) % 2**63)
            inputs = self._collate_text(task, inputs, generator)
        self.counters["micro_batches"] += 1
        inputs = {
            k: _to_device(v, self.accelerator.device) for k, v in inputs.items() if k in task.input_names
        }
        return inputs, batch["num_rows"]

    @staticmethod
    def _collate_text(task: Task, input_ids: list[list[int]], generator: torch.Generator) -> dict:
        examples = [{"input_ids": ids} for ids in input_ids]
        if "generator" in inspect.signature(task.text_collator.__call__).parameters:
            return dict(task.text_collator(examples, generator=generator))
        return dict(task.text_collator(examples))  # no randomness (causal LM)

    def _forward_backward(
        self, task: Task, inputs: dict, units: int
    ) -> tuple[dict[str, float], bool, int | None]:
        """Forward and backward of one micro-batch of `units` tokens/patches/nodes -> (losses by name,
        finite on every process, FLOPs).

        The names are `loss` and, when the objective sums several (SSAST, MLM + substitution), each part
        (`discriminative_loss`, ...). FLOPs are counted on the first micro-batch of each task, else None.
        """

        def run() -> tuple[dict[str, float], bool]:
            outputs = self.model(task.name, **inputs) if self.multi_task else self.model(**inputs)
            finite = self._agree(outputs.loss)
            # A non-finite loss still runs backward under DDP (its gradient all-reduce must happen on every
            # process; the step is then dropped). DeepSpeed steps inside backward, so there it is skipped.
            if finite or not self.deepspeed:
                self.accelerator.backward(outputs.loss)
            parts = {
                k: float(v.detach()) for k, v in outputs.items() if k.endswith("_loss") and v is not None
            }
            return {"loss": float(outputs.loss.detach()), **(parts if len(parts) > 1 else {})}, finite

        if task.flops_per_unit is not None:
            return *run(), None
        (named, finite), flops = count_flops(run)
        task.flops_per_unit = flops / max(units, 1)
        return named, finite, flops

    def _agree(self, loss: torch.Tensor) -> bool:
        """Whether the loss is finite on every process; also shares which stop signal (SIGTERM, SIGINT) any
        process received, so all of them stop after the same step. One small all-reduce per micro-batch."""
        device = self.accelerator.device
        received = [float(STOP.signum == signum) for signum in STOP_SIGNALS]
        flags = torch.cat([torch.isfinite(loss.detach()).float().reshape(1).to(device),
                           torch.tensor(received, device=device)])  # fmt: skip
        if self.accelerator.num_processes > 1:
            flags = self.accelerator.reduce(flags, reduction="sum")
        flags = flags.cpu()
        if not self._stop_agreed and bool(flags[1:].any()):
            self._stop_agreed = True
            agreed = next(signum for signum, count in zip(STOP_SIGNALS, flags[1:]) if count > 0)
            self.stopped_by = STOP.signum or agreed
            if STOP.signum is None and self.accelerator.is_main_process:  # it reached another process
                logger.warning("%s: stopping after this step with a checkpoint.", agreed.name)
        return bool(flags[0] == self.accelerator.num_processes)

    def _apply_gradients(self, nonfinite: bool) -> tuple[bool, float | None]:
        """Clip and take the optimizer step unless the loss or the gradient norm is NaN/Inf on any process;
        returns (step taken, global gradient norm).

        A non-finite norm with a finite loss (an overflow inside backward) would turn every weight NaN
        through clipping or Adam, so that step is dropped like a non-finite loss. Under DDP the gradients
        are already averaged, so every process sees the same norm and makes the same choice. DeepSpeed
        steps inside `backward` and drops such a step itself (its overflow check); it is counted here.
        """
        if self.deepspeed:
            skipped = self.model.skipped_steps > self._deepspeed_skipped
            norm = None if nonfinite or skipped else self.model.get_global_grad_norm()
            return not (nonfinite or skipped), (float(norm) if norm is not None else None)
        if nonfinite:
            self.optimizer.zero_grad(set_to_none=True)
            return False, None
        limit = self.config.training.max_grad_norm
        # With clipping off the norm is still measured (an infinite limit scales by 1), to catch overflow.
        norm = self.accelerator.clip_grad_norm_(
            self.model.parameters(), limit if limit is not None else math.inf
        )
        norm = float(norm) if norm is not None else None
        if norm is not None and not math.isfinite(norm):
            self.optimizer.zero_grad(set_to_none=True)
            return False, None
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return True, norm

    def _check_nonfinite_limit(self) -> None:
        limit = self.config.training.max_nonfinite_steps
        logger.warning("Step %d had a NaN/Inf loss or gradient norm and was skipped (%d so far).", self.step + 1,
                       self.counters["nonfinite_steps"])  # fmt: skip
        if self.counters["nonfinite_steps"] > limit:
            raise NonFiniteLossError(
                f"Stopped at step {self.step + 1}: {self.counters['nonfinite_steps']} steps had a NaN or infinite "
                f"loss or gradient norm (more than training.max_nonfinite_steps={limit}). Lower training.learning_rate, keep "
                "training.max_grad_norm on, prefer bf16 to fp16, or look for extreme values in the data. "
                f"Checkpoints before the divergence are in {self.output_dir / 'checkpoints'}."
            )

    # ------------------------------------------------------------------------------------------ metrics

    def _new_window(self) -> dict[str, Any]:
        # "sums": {"<task>/loss" or "<task>/<part>_loss": [sum, count]}, the same keys on every process
        # (every process trains the same task in a step and agrees on which steps were finite).
        return {"steps": 0, "seconds": 0.0, "samples": 0, "units": 0, "flops": 0, "flops_known": True,
                "sums": {}, "grad_norm": [], "scheduled": {}}  # fmt: skip

    def _account(self, result: dict[str, Any], seconds: float) -> None:
        w = self._window
        w["steps"] += 1
        w["seconds"] += seconds
        w["samples"] += result["samples"]
        w["units"] += result["units"]
        if result["flops"] is None:
            w["flops_known"] = False
        else:
            w["flops"] += result["flops"]
        if result["finite"]:
            for key, value in {"loss": result["loss"], **result["parts"]}.items():
                total = w["sums"].setdefault(f"{result['task']}/{key}", [0.0, 0])
                total[0] += value
                total[1] += 1
        if result["grad_norm"] is not None:
            w["grad_norm"].append(result["grad_norm"])
        # The latest value of each scheduled hyperparameter (the same on every process).
        w["scheduled"].update(
            {f"{result['task']}/{key}": value for key, value in result["scheduled"].items()}
        )
        self.counters["samples"] += result["samples"]

    def _log(self) -> dict[str, Any]:
        """Reduce the window over processes, log it to the trackers and the history, start a new window."""
        w = self._window
        keys = sorted(w["sums"])
        values = [w["samples"], w["units"], w["flops"], self.counters["skipped_samples"]]
        values += [x for key in keys for x in w["sums"][key]]
        totals = torch.tensor(values, dtype=torch.float64, device=self.accelerator.device)
        if self.accelerator.num_processes > 1:
            totals = self.accelerator.reduce(totals, reduction="sum")
        (samples, units, flops, skipped), pairs = totals[:4].tolist(), totals[4:].reshape(-1, 2).tolist()
        sums = dict(zip(keys, pairs))
        task_losses = [pair for key, pair in sums.items() if key.endswith("/loss")]
        count = sum(n for _, n in task_losses)
        record: dict[str, Any] = {"step": self.step}
        record["loss"] = sum(total for total, _ in task_losses) / count if count else math.nan
        for key, (total, n) in sums.items():
            if key.endswith("/loss") and not self.multi_task:
                continue  # the run's loss is the task's loss
            record[key] = total / n
        record["lr"] = self.scheduler.get_last_lr()[0]
        record.update(w["scheduled"])
        if w["grad_norm"]:
            record["grad_norm"] = sum(w["grad_norm"]) / len(w["grad_norm"])
        # One meter update per logging window (the counts were just summed over processes); the meter's
        # summary leaves out the first window (warm-up, FLOP counting).
        flops = int(flops) if w["flops_known"] else None
        record.update(self.meter.update(w["seconds"], int(samples), int(units), flops, steps=w["steps"]))
        record["peak_memory_gib"] = peak_memory_bytes(self.accelerator.device) / 2**30
        record["nonfinite_steps"] = self.counters["nonfinite_steps"]
        record["skipped_samples"] = int(skipped)
        self.history.append(record)
        self.accelerator.log({k: v for k, v in record.items() if k != "step"}, step=self.step)
        self._window = self._new_window()
        return record

    # ------------------------------------------------------------------------------------------ the end

    def finish(
        self, exported: dict[str, str], evaluation: dict[str, Any] | None = None, extra: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Write `metrics.json` and `loss.png` (main process), close the trackers and, with `hub.push_to_hub`,
        publish the run (main process, `mmfm.hub.push_run`); returns the metrics. `extra` adds top-level
        entries (a continued run's `init_from` and `forgetting`)."""
        summary = self.metrics_summary(exported)
        summary["evaluation"] = evaluation or {}
        summary.update(extra or {})
        if self.run_folder is not None:
            self.run_folder.ensure()
        if evaluation:
            self.accelerator.log(_evaluation_scalars(evaluation), step=self.step)
        if self.accelerator.is_main_process:
            (self.output_dir / "metrics.json").write_text(json.dumps(summary, indent=2) + "\n")
            if any(math.isfinite(r.get("loss", math.nan)) for r in self.history):
                plot_loss_curve(
                    self.plotted_history(),
                    self.output_dir / "loss.png",
                    title=f"mmfm {self.kind}: {self.output_dir.name}",
                )
        self.accelerator.end_training()
        hub = getattr(self.config, "hub", None)
        if hub is not None and hub.push_to_hub and self.accelerator.is_main_process:
            from ..hub import push_run  # publishing is optional: loaded when asked for

            push_run(self.output_dir, hub)
        return summary

    def plotted_history(self) -> list[dict[str, Any]]:
        """The records `loss.png` draws (every key ending in `loss`)."""
        return self.history

    def metrics_summary(self, exported: dict[str, str]) -> dict[str, Any]:
        last = self.history[-1] if self.history else {}
        return {
            "output_dir": str(self.output_dir),
            "objectives": {name: task.section.objective for name, task in self.tasks.items()},
            "steps": self.step,
            "num_processes": self.accelerator.num_processes,
            "distributed_type": str(self.accelerator.distributed_type),
            "device": str(self.accelerator.device),
            "mixed_precision": self.config.training.mixed_precision,
            "rows_per_step": self.config.training.per_device_batch_size
            * self.accelerator.num_processes
            * self.config.training.gradient_accumulation_steps,
            "final_loss": last.get("loss"),
            "final_task_losses": {k: v for k, v in last.items() if k.endswith("/loss")},
            "throughput": self.meter.summary(),
            "peak_memory_gib": max((r["peak_memory_gib"] for r in self.history), default=None),
            "nonfinite_steps": self.counters["nonfinite_steps"],
            "skipped_samples": last.get("skipped_samples", 0),
            "train_seconds": self.train_seconds,
            "resumed_from": self.resumed_from,
            "exported": exported,
            "history": self.history,
        }


def _to_device(value: Any, device: torch.device) -> Any:
    """A tensor, or a mapping of them (a binding task's `{modality: encoder inputs}`), on `device`."""
    if isinstance(value, dict):
        return {k: _to_device(v, device) for k, v in value.items()}
    return value.to(device)


def _evaluation_scalars(evaluation: dict[str, Any], prefix: str = "eval") -> dict[str, float]:
    """Every number of the evaluation report as `{"eval/<task>/<...>/<metric>": value}` for the trackers."""
    scalars = {}
    for key, value in evaluation.items():
        name = f"{prefix}/{key}"
        if isinstance(value, dict):
            scalars.update(_evaluation_scalars(value, name))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            scalars[name] = float(value)
    return scalars


def _widest(config) -> int:
    """`hidden_size` of an encoder config, or the largest of a composite's encoders."""
    if hasattr(config, "hidden_size"):
        return config.hidden_size
    return max(config.modality_config(m).hidden_size for m in config.modalities)


def _fill_zero3_buckets(accelerator: Accelerator, tasks: dict[str, Task]) -> None:
    """Accelerate sizes ZeRO-3's buckets from `model.config.hidden_size`, which a `MultiTaskModel` and a
    composite `MMFMModel` lack: use the widest encoder's width, with Accelerate's own formulas."""
    width = max(_widest(task.model.config) for task in tasks.values())
    zero = accelerator.state.deepspeed_plugin.deepspeed_config.get("zero_optimization", {})
    sizes = {
        "reduce_bucket_size": width * width,
        "stage3_prefetch_bucket_size": int(0.9 * width * width),
        "stage3_param_persistence_threshold": 10 * width,
    }
    for key, value in sizes.items():
        if zero.get(key) == "auto":
            zero[key] = value


__all__ = ["NonFiniteLossError", "Trainer"]
