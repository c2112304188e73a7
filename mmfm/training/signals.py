"""Stopping a run cleanly: SIGTERM (a scheduler's preemption, `kill`) and SIGINT (Ctrl-C) end the run after
the current optimizer step with a checkpoint, on every process, from which the same command continues.

Where the signal arrives and what happens:

- **Before training** (the recipe installs the handlers once the Accelerator is built; building the data
  and the model, resuming): the request waits; the first training step runs and every process stops after
  it with a checkpoint, so a stop is always the same thing (an agreed step and a checkpoint) and nothing
  is interrupted halfway. Earlier (imports, joining the process group) the signal's default action ends
  the process at once, before it has written anything.
- **While training**: every process shares the request with the loss check of each micro-batch
  (`Trainer._agree`), so all of them stop after the same step, save it, and exit with 128 + the signal
  (143 for SIGTERM, 130 for SIGINT), like a process the signal had ended.
- **After training** (export, evaluation, `metrics.json`): the final checkpoint is already complete, so the
  process quits at once with the same exit code; the same command exports and evaluates again.
- **A second SIGINT** while stopping (Ctrl-C twice) quits at once, with SIGINT's default action (exit
  130 from a shell), without a checkpoint; checkpoints are written to a `.tmp-` folder and renamed, so the
  newest complete one stays intact. Any other signal while stopping is ignored: SIGTERM often arrives
  twice for one stop (a scheduler signals every process of the job, the launcher forwards its own, and a
  launcher's death sends one more, below) and schedulers follow it with SIGKILL anyway; Ctrl-C in a
  terminal reaches a one-process `accelerate launch` and its training process, whose launcher's death
  then adds a SIGTERM.

Launchers: `torchrun` and Accelerate's multi-process and DeepSpeed paths (torch elastic) forward SIGTERM and
SIGINT to every worker and SIGKILL the ones still alive `TORCH_ELASTIC_SHUTDOWN_TIMEOUT` seconds later
(30 by default; raise it when a checkpoint takes longer to write). Accelerate's one-process path forwards
nothing and dies, which left the training process running as an orphan: a process started by a launcher
therefore asks Linux to send it SIGTERM when its launcher dies (`PR_SET_PDEATHSIG`), and stops as above.
A process started without a launcher (`python recipes/pretrain.py`, e.g. under `nohup`) is not tied to its
parent, so a closed shell does not stop it.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys
import threading
from typing import Any

logger = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
# Set in the environment of the processes a launcher starts: torch elastic's workers (torchrun, Accelerate's
# multi-process and DeepSpeed paths) and Accelerate's one-process path (`prepare_simple_launcher_cmd_env`).
LAUNCHER_ENV = ("TORCHELASTIC_RUN_ID", "ACCELERATE_DYNAMO_BACKEND")
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


class StopRequest:
    """The stop signals this process received (one `STOP` per process; see the module docstring)."""

    def __init__(self) -> None:
        self.signum: signal.Signals | None = None  # the first stop signal received
        self._received: set[signal.Signals] = set()
        self._previous: dict[int, Any] | None = None  # the handlers `install` replaced
        self._quit_at_once = False
        self.follows_launcher = False  # `stop_with_launcher` armed the parent-death signal

    @property
    def installed(self) -> bool:
        return self._previous is not None

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def install(self) -> bool:
        """Handle SIGTERM and SIGINT from now on, with no stop requested yet; False (nothing done) off the
        main thread, where Python cannot install signal handlers."""
        if threading.current_thread() is not threading.main_thread():
            return False
        if self._previous is None:
            self._previous = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
        self.signum, self._received, self._quit_at_once = None, set(), False
        for signum in STOP_SIGNALS:
            signal.signal(signum, self._handle)
        return True

    def uninstall(self) -> None:
        """The run is over: put back the handlers `install` replaced, forget the request, and stop following
        the launcher (a launcher that dies now, after Ctrl-C, must not cut short a clean exit)."""
        if self._previous is None or threading.current_thread() is not threading.main_thread():
            return
        if self.follows_launcher:
            self.follows_launcher = not _set_parent_death_signal(0)
        for signum, handler in self._previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        self._previous = None
        self.signum, self._received, self._quit_at_once = None, set(), False

    def quit_at_once(self) -> None:
        """Training is over and checkpointed: from now on a stop signal ends the process at once (`SystemExit`
        with 128 + the signal, so `finally` blocks still run); one that already arrived does so now."""
        self._quit_at_once = True
        if self.requested:
            self._quit()

    def _handle(self, signum: int, frame: Any) -> None:
        signum = signal.Signals(signum)
        name = signum.name
        if signum == signal.SIGINT and signum in self._received:
            logger.warning("A second SIGINT: quitting now, without a checkpoint.")
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        self._received.add(signum)
        if self.signum is not None:
            logger.info("%s while already stopping on %s: ignored.", name, self.signum.name)
            return
        self.signum = signum
        if self._quit_at_once:
            self._quit()
        again = " (Ctrl-C again quits at once, without one)" if signum == signal.SIGINT else ""
        logger.warning("%s: stopping after this step with a checkpoint%s.", name, again)

    def _quit(self) -> None:
        logger.warning(
            "%s after training: quitting the export/evaluation. The final checkpoint is complete; the same "
            "command exports and evaluates again.", self.signum.name,
        )  # fmt: skip
        raise SystemExit(128 + self.signum)


# The stop request of this process: installed by the recipe, read by the Trainer.
STOP = StopRequest()


def handle_stop_signals(launcher_pid: int | None = None) -> StopRequest:
    """Install `STOP`'s handlers (a fresh request) and, in a process a launcher started, stop when the
    launcher dies (`stop_with_launcher`). Returns `STOP`."""
    STOP.install()
    if any(key in os.environ for key in LAUNCHER_ENV):
        STOP.follows_launcher = stop_with_launcher(launcher_pid)
    return STOP


def stop_with_launcher(launcher_pid: int | None = None) -> bool:
    """Ask Linux to send this process SIGTERM when its parent (the launcher) exits; True when armed.

    `launcher_pid`: the parent's pid read when the process started (before the slow imports); if the parent
    has changed since, the launcher is already gone and this process sends itself the SIGTERM now. Elsewhere
    than Linux nothing is done.
    """
    if not _set_parent_death_signal(signal.SIGTERM):
        return False
    if launcher_pid is not None and os.getppid() != launcher_pid:
        logger.warning("The launcher (pid %d) exited before this process was tied to it.", launcher_pid)
        signal.raise_signal(signal.SIGTERM)
    return True


def _set_parent_death_signal(signum: int) -> bool:
    """`prctl(PR_SET_PDEATHSIG, signum)` (0: none); False elsewhere than Linux or when it fails."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, int(signum), 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    except (OSError, AttributeError) as err:
        logger.warning("Could not set the parent-death signal (prctl PR_SET_PDEATHSIG): %s", err)
        return False
    return True


__all__ = ["STOP", "STOP_SIGNALS", "StopRequest", "handle_stop_signals", "stop_with_launcher"]
