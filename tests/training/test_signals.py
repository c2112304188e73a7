"""SIGTERM and SIGINT stop a run after the same step on every process, with a checkpoint the same command
continues from (`mmfm.training.signals`).

The launch tests signal the `accelerate launch` process, as a scheduler or a terminal does, not the training
process: one process (Accelerate forwards nothing; the training process follows its launcher's death),
DDP and DeepSpeed ZeRO-2 (torch elastic forwards the signal), and two "nodes" over loopback where only one
node is signalled (the other learns it from the per-step all-reduce).
"""

import contextlib
import ctypes
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import mmfm.training
import mmfm.training.trainer
from mmfm.training.checkpointing import verify_checkpoint
from mmfm.training.signals import StopRequest

from ._runs import (
    RECIPE,
    REPO,
    free_port,
    launch,
    launch_command,
    launch_env,
    mae_run,
    metrics,
    run_in_process,
)

# Each launch test starts training processes: on one pytest worker they do not compete for the same cores.
pytestmark = [
    pytest.mark.xdist_group("multiprocess"),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl and /proc are Linux's"),
]

LONG = 100_000  # steps: the runs are stopped long before
PR_SET_CHILD_SUBREAPER = 36  # <linux/prctl.h>
STOPPING = "{}: stopping after this step with a checkpoint"


# ---------------------------------------------------------------------------------------------- helpers


@contextlib.contextmanager
def _not_ignoring_interrupts():
    """Launch with SIGINT and SIGQUIT as a terminal's foreground job has them. A shell starts background jobs
    (`make test &`, nohup) with both ignored; an ignored signal stays ignored across exec, and Python then
    installs no KeyboardInterrupt handler in the launcher, so Ctrl-C would never reach it. A handled signal
    is reset to the default by exec, so handling both here while the launcher starts is enough."""
    saved = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGQUIT)}
    for signum, handler in saved.items():
        if handler == signal.SIG_IGN:
            signal.signal(signum, signal.default_int_handler)
    try:
        yield
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)


class Launch:
    """`accelerate launch launch_args recipes/pretrain.py recipe_args` in its own session, logging to `log`;
    on exit every process it started is killed (a failed test leaves nothing running)."""

    def __init__(self, launch_args: list[str], recipe_args: list[str], log: Path):
        self.log = log
        with open(log, "w") as out, _not_ignoring_interrupts():
            self.process = subprocess.Popen(launch_command(launch_args, recipe_args), cwd=REPO, env=launch_env(),
                                            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        self.pid = self.process.pid
        self.workers: list[int] = []

    def text(self) -> str:
        return self.log.read_text(errors="replace").replace("\r", "\n")

    def wait_for_step(self, step: int = 3, timeout: float = 180) -> None:
        """Until the main process's progress bar shows `step`; then note the training processes."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            shown = [int(n) for n in re.findall(rf"\|\s*(\d+)/{LONG}\b", self.text())]
            if shown and shown[-1] >= step:
                self.workers = children(self.pid)
                return
            assert self.process.poll() is None, (
                f"the launcher ended ({self.process.returncode}):\n{self.tail()}"
            )
            time.sleep(0.1)
        pytest.fail(f"no training progress after {timeout} s:\n{self.tail()}")

    def tail(self) -> str:
        return self.text()[-4000:]

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)  # the launcher, and a one-process run's training process
        for pid in self.workers:  # torch elastic starts each in a session of its own
            kill_training_process(pid)
        self.process.wait()


def children(pid: int) -> list[int]:
    """The child processes of `pid` (the training processes of a launcher)."""
    found = []
    for threads in Path(f"/proc/{pid}/task").glob("*/children"):
        with contextlib.suppress(FileNotFoundError):
            found += [int(child) for child in threads.read_text().split()]
    return found


def kill_training_process(pid: int) -> None:
    """SIGKILL `pid` if it still runs the recipe (not a later process that got the same number)."""
    with contextlib.suppress(FileNotFoundError, ProcessLookupError):
        if alive(pid) and RECIPE.name in Path(f"/proc/{pid}/cmdline").read_text(errors="replace"):
            os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):  # an orphan this process adopted
        os.waitpid(pid, 0)


def alive(pid: int) -> bool:
    """Running, not a zombie waiting to be reaped."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def wait_until_gone(pids: list[int], timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while any(alive(pid) for pid in pids) and time.time() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in pids if alive(pid)], f"still running {timeout} s after the launcher ended"


@contextlib.contextmanager
def adopting_orphans():
    """This process adopts the orphans of its descendants (Linux `PR_SET_CHILD_SUBREAPER`), so the exit code
    of a training process whose launcher died can be read with `waitpid`."""
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    try:
        yield
    finally:
        libc.prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)


def exit_code(pid: int, timeout: float = 60) -> int:
    """The exit code of `pid`, an adopted orphan (negative: the signal that ended it)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.1)
    pytest.fail(f"process {pid} still running after {timeout} s")


def stopped_step(run: Path, processes: int = 1) -> int:
    """The step of the one checkpoint of `run`, the same in every process's trainer state."""
    root = run / "checkpoints"
    assert not list(root.glob(".tmp-*")), "an unfinished checkpoint was left"
    found = sorted(root.glob("step_*"))
    assert len(found) == 1, f"checkpoints: {[p.name for p in found]}"
    steps = {json.loads((found[0] / f"trainer_state_{i}.json").read_text())["step"] for i in range(processes)}
    assert len(steps) == 1, f"the processes saved different steps: {steps}"
    step = steps.pop()
    assert found[0].name == f"step_{step:08d}"
    assert not (run / "metrics.json").exists()
    return step


def long_run(tmp_path: Path) -> list[str]:
    return mae_run(tmp_path, f"training.max_steps={LONG}", "logging.progress_bar=true")


# ---------------------------------------------------------------------------------------------- launcher


def test_sigterm_to_the_launcher_of_one_process_stops_it_with_a_checkpoint_and_the_run_continues(tmp_path):
    """Accelerate's one-process launcher dies on SIGTERM without forwarding it; its training process follows
    (parent-death signal) instead of training on as an orphan."""
    run = long_run(tmp_path)
    with adopting_orphans(), Launch([], run, tmp_path / "stop.log") as launched:
        launched.wait_for_step()
        assert len(launched.workers) == 1
        os.kill(launched.pid, signal.SIGTERM)
        assert launched.process.wait(timeout=30) == -signal.SIGTERM  # the launcher's own default action
        assert exit_code(launched.workers[0]) == 143
    step = stopped_step(tmp_path / "run")
    log = launched.text()
    assert log.count(STOPPING.format("SIGTERM")) == 1
    assert (
        f"Stopped by SIGTERM after step {step}, saved in" in log and "Run the same command to continue" in log
    )
    launch([], [*run, f"training.max_steps={step + 2}"], tmp_path / "again.log")
    again = metrics(tmp_path / "run")
    assert again["resumed_from"].endswith(f"step_{step:08d}") and again["steps"] == step + 2


def test_ctrl_c_on_one_process_stops_it_with_a_checkpoint_and_exit_130(tmp_path):
    """Ctrl-C sends SIGINT to the terminal's foreground process group: the launcher and its training process."""
    with adopting_orphans(), Launch([], long_run(tmp_path), tmp_path / "stop.log") as launched:
        launched.wait_for_step()
        os.killpg(launched.pid, signal.SIGINT)
        assert launched.process.wait(timeout=30) == -signal.SIGINT  # KeyboardInterrupt in the launcher
        assert exit_code(launched.workers[0]) == 130
    step = stopped_step(tmp_path / "run")
    log = launched.text()
    assert log.count(STOPPING.format("SIGINT")) == 1  # the launcher's death (SIGTERM) is ignored
    assert f"Stopped by SIGINT after step {step}" in log


@pytest.mark.parametrize(
    ("backend", "signum"),
    [("ddp", signal.SIGTERM), ("ddp", signal.SIGINT), ("zero2", signal.SIGTERM)],
    ids=["ddp-sigterm", "ddp-sigint", "zero2-sigterm"],
)
def test_a_signal_to_a_two_process_launcher_stops_both_after_the_same_step(tmp_path, backend, signum):
    """torch elastic (DDP and DeepSpeed paths) forwards SIGTERM and SIGINT to every process and waits for them."""
    if backend == "ddp":
        launch_args = ["--multi_gpu", "--num_processes", "2", "--num_machines", "1"]
    else:
        zero2 = REPO / "recipes" / "accelerate" / "zero2.yaml"
        launch_args = ["--config_file", str(zero2), "--num_processes", "2"]
    launch_args += ["--main_process_port", str(free_port())]
    with Launch(launch_args, long_run(tmp_path), tmp_path / "stop.log") as launched:
        launched.wait_for_step()
        assert len(launched.workers) == 2
        os.kill(launched.pid, signum)
        assert launched.process.wait(timeout=60) == 1  # torch elastic re-raises the signal as an error
        wait_until_gone(launched.workers)
    step = stopped_step(tmp_path / "run", processes=2)
    log = launched.text()
    assert log.count(STOPPING.format(signum.name)) == 2  # once per process
    assert f"Stopped by {signum.name} after step {step}" in log
    if backend == "zero2":
        assert (tmp_path / "run" / "checkpoints" / f"step_{step:08d}" / "pytorch_model").is_dir()


def test_sigterm_to_one_of_two_nodes_stops_both_after_the_same_step(tmp_path):
    """Two `accelerate launch` commands meeting over loopback; only the second node's launcher is signalled,
    the first node's process learns it from the per-step all-reduce."""
    run, port = long_run(tmp_path), free_port()
    with contextlib.ExitStack() as stack:
        nodes = []
        for rank in (0, 1):
            node = ["--multi_gpu", "--num_machines", "2", "--num_processes", "2", "--machine_rank", str(rank),
                    "--main_process_ip", "127.0.0.1", "--main_process_port", str(port)]  # fmt: skip
            nodes.append(stack.enter_context(Launch(node, run, tmp_path / f"node{rank}.log")))
        nodes[0].wait_for_step()
        nodes[1].workers = children(nodes[1].pid)
        os.kill(nodes[1].pid, signal.SIGTERM)
        for launched in nodes:
            assert launched.process.wait(timeout=60) == 1, launched.tail()
            wait_until_gone(launched.workers)
    step = stopped_step(tmp_path / "run", processes=2)
    first, second = nodes[0].text(), nodes[1].text()
    assert second.count(STOPPING.format("SIGTERM")) == 1
    assert first.count(STOPPING.format("SIGTERM")) == 1  # the main process says why it stops
    assert f"Stopped by SIGTERM after step {step}" in first
    assert re.search(r"exitcode\s*:\s*143", first), "the first node's process did not exit with 143"


# ---------------------------------------------------------------------------------------------- in process


def test_a_signal_while_the_run_is_built_stops_it_after_the_first_step(tmp_path, monkeypatch):
    build_tasks = mmfm.training.build_tasks

    def build_then_sigterm(*args, **kwargs):
        tasks = build_tasks(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGTERM)
        return tasks

    monkeypatch.setattr(mmfm.training, "build_tasks", build_then_sigterm)
    run = mae_run(tmp_path, "training.max_steps=3")
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit) as stopped:
        run_in_process(*run)
    assert stopped.value.code == 143
    assert signal.getsignal(signal.SIGTERM) is before  # the recipe put the handlers back
    assert stopped_step(tmp_path / "run") == 1
    monkeypatch.undo()
    result = run_in_process(*run)
    assert result["resumed_from"].endswith("step_00000001") and result["steps"] == 3


def test_a_signal_during_the_final_save_stops_the_run_there(tmp_path, monkeypatch):
    """After the last step's `_agree`: the end of training checks once more, on every process."""
    save_checkpoint = mmfm.training.trainer.save_checkpoint

    def sigterm_then_save(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        return save_checkpoint(*args, **kwargs)

    monkeypatch.setattr(mmfm.training.trainer, "save_checkpoint", sigterm_then_save)
    run = mae_run(tmp_path, "training.max_steps=3")
    with pytest.raises(SystemExit) as stopped:
        run_in_process(*run)
    assert stopped.value.code == 143
    assert stopped_step(tmp_path / "run") == 3
    monkeypatch.undo()
    assert run_in_process(*run)["resumed_from"].endswith("step_00000003")


def test_a_signal_during_the_export_quits_at_once_and_the_same_command_exports_again(tmp_path, monkeypatch):
    export_models = mmfm.training.trainer.export_models

    def sigint_then_export(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)
        return export_models(*args, **kwargs)

    monkeypatch.setattr(mmfm.training.trainer, "export_models", sigint_then_export)
    run = mae_run(tmp_path, "training.max_steps=3")
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(SystemExit) as stopped:
        run_in_process(*run)
    assert stopped.value.code == 130
    assert signal.getsignal(signal.SIGINT) is before
    assert stopped_step(tmp_path / "run") == 3  # the end of training, saved before the export
    monkeypatch.undo()
    result = run_in_process(*run)
    assert result["resumed_from"].endswith("step_00000003") and result["steps"] == 3
    assert (tmp_path / "run" / "model" / "model.safetensors").is_file()


def test_a_second_ctrl_c_quits_at_once_and_repeated_sigterms_are_ignored(monkeypatch):
    killed = []
    monkeypatch.setattr("mmfm.training.signals.os.kill", lambda pid, signum: killed.append(signum))
    stop, before = StopRequest(), signal.getsignal(signal.SIGINT)
    assert stop.install()
    try:
        signal.raise_signal(signal.SIGTERM)
        signal.raise_signal(signal.SIGTERM)  # a scheduler's and the launcher's: still one stop
        assert (stop.signum, killed) == (signal.SIGTERM, [])
        signal.raise_signal(signal.SIGINT)  # a first SIGINT while stopping: ignored, the exit code stays 143
        assert (stop.signum, killed) == (signal.SIGTERM, [])
        signal.raise_signal(signal.SIGINT)
        assert killed == [signal.SIGINT] and signal.getsignal(signal.SIGINT) is signal.SIG_DFL
    finally:
        stop.uninstall()
    assert signal.getsignal(signal.SIGINT) is before


def test_a_launched_process_is_tied_to_its_launcher_and_a_plain_one_is_not():
    """Only under a launcher (its environment) does the process ask for SIGTERM on its parent's death, until
    the run is over; a launcher that died before that is noticed by its pid."""
    script = """
import ctypes, os, signal
from mmfm.training.signals import LAUNCHER_ENV, STOP, handle_stop_signals

def death_signal():
    value = ctypes.c_int()
    ctypes.CDLL(None).prctl(2, ctypes.byref(value), 0, 0, 0)  # PR_GET_PDEATHSIG
    return value.value

for key in LAUNCHER_ENV:
    os.environ.pop(key, None)
handle_stop_signals(os.getppid())
plain = death_signal()
os.environ[LAUNCHER_ENV[0]] = "test"
handle_stop_signals(os.getppid())
launched, ok_stop = death_signal(), STOP.signum
handle_stop_signals(os.getppid() + 1)  # not the parent any more: the launcher already died
late_stop = int(STOP.signum)
STOP.uninstall()  # the run is over: a launcher dying now must not cut the exit short
print(plain, launched, ok_stop, late_stop, death_signal())
"""
    env = {
        k: v for k, v in launch_env().items() if k not in ("TORCHELASTIC_RUN_ID", "ACCELERATE_DYNAMO_BACKEND")
    }
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=120, check=False)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    sigterm = str(int(signal.SIGTERM))
    assert result.stdout.split() == ["0", sigterm, "None", sigterm, "0"]


# ---------------------------------------------------------------------------------------------- concurrency


def test_a_second_launch_into_a_training_run_is_refused_and_the_first_trains_on(tmp_path):
    """Two runs started into one folder used to race (one crashed on a checkpoint the other deleted): the
    second is refused by the first's lock, naming its pid and host, and the first is untouched."""
    run = mae_run(tmp_path, f"training.max_steps={LONG}", "logging.progress_bar=true",
                  "checkpointing.save_every=2", "checkpointing.keep_last=1")  # fmt: skip
    with adopting_orphans(), Launch([], run, tmp_path / "first.log") as first:
        first.wait_for_step()
        second = subprocess.run(launch_command([], run), cwd=REPO, env=launch_env(), capture_output=True,
                                text=True, timeout=120, check=False)  # fmt: skip
        assert second.returncode != 0
        assert f"is in use by another run (pid {first.workers[0]} on host " in second.stdout + second.stderr
        assert first.process.poll() is None  # still training
        os.kill(first.pid, signal.SIGTERM)
        first.process.wait(timeout=30)
        assert exit_code(first.workers[0]) == 143
    newest = max((tmp_path / "run" / "checkpoints").glob("step_*"))
    assert verify_checkpoint(newest) == []
