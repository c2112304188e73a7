"""Checkpoints: written to a temporary folder and renamed, so a crash while saving never hides the last
complete one; the newest K are kept; `resume=auto` picks the newest complete one, `resume=<path>` a
given one."""

import functools
import os
import shutil
import signal

import pytest

from mmfm.models import MMFMVisionForMAE
from mmfm.training import complete_checkpoints

from ._runs import mae_run, run_in_process


def test_keep_last_and_the_end_state(tmp_path):
    result = run_in_process(*mae_run(tmp_path, "training.max_steps=7", "checkpointing.save_every=2",
                                     "checkpointing.keep_last=2"))  # fmt: skip
    names = [p.name for p in complete_checkpoints(tmp_path / "run" / "checkpoints")]
    assert names == ["step_00000006", "step_00000007"]  # 2 and 4 pruned; 7 is the end of the run
    assert result["steps"] == 7


def test_a_save_interrupted_by_a_crash_is_ignored_and_cleaned_up(tmp_path):
    checkpoints = tmp_path / "run" / "checkpoints"
    run_in_process(*mae_run(tmp_path, "training.max_steps=4", "checkpointing.save_every=2"))
    # What a crash in the middle of saving step 6 leaves: a temporary folder with part of the state.
    partial = checkpoints / ".tmp-step_00000006"
    shutil.copytree(checkpoints / "step_00000004", partial)
    (partial / "trainer_state_0.json").unlink()
    assert [p.name for p in complete_checkpoints(checkpoints)] == ["step_00000002", "step_00000004"]
    result = run_in_process(*mae_run(tmp_path, "training.max_steps=8", "checkpointing.save_every=2"))
    assert result["resumed_from"].endswith("step_00000004")
    assert not partial.exists()  # removed by the next save
    assert [p.name for p in complete_checkpoints(checkpoints)] == ["step_00000006", "step_00000008"]


def test_resume_from_a_named_checkpoint(tmp_path):
    run_in_process(*mae_run(tmp_path, "training.max_steps=4", "checkpointing.save_every=2",
                            "checkpointing.keep_last=3"))  # fmt: skip
    named = tmp_path / "run" / "checkpoints" / "step_00000002"
    result = run_in_process(*mae_run(tmp_path, "training.max_steps=5", "checkpointing.save_every=2",
                                     "checkpointing.keep_last=3", f"checkpointing.resume={named}"))  # fmt: skip
    assert result["resumed_from"] == str(named)
    assert [r["step"] for r in result["history"]] == [1, 2, 3, 4, 5]


def test_resume_from_a_folder_that_is_no_checkpoint_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="not an mmfm checkpoint"):
        run_in_process(*mae_run(tmp_path, "training.max_steps=2", f"checkpointing.resume={tmp_path}"))


def test_sigterm_saves_the_last_step_and_the_same_command_continues(tmp_path, monkeypatch):
    """A scheduler's SIGTERM (preemption) stops the run after the current step with a checkpoint."""
    calls, forward = [0], MMFMVisionForMAE.forward

    @functools.wraps(forward)
    def forward_then_sigterm(self, *args, **kwargs):
        calls[0] += 1
        if calls[0] == 3:
            os.kill(os.getpid(), signal.SIGTERM)
        return forward(self, *args, **kwargs)

    monkeypatch.setattr(MMFMVisionForMAE, "forward", forward_then_sigterm)
    run = mae_run(tmp_path, "training.max_steps=6", "checkpointing.save_every=5")
    with pytest.raises(SystemExit) as stopped:
        run_in_process(*run)
    assert stopped.value.code == 143
    checkpoints = tmp_path / "run" / "checkpoints"
    assert [p.name for p in complete_checkpoints(checkpoints)] == ["step_00000003"]
    assert not (tmp_path / "run" / "metrics.json").exists()
    monkeypatch.undo()
    result = run_in_process(*run)
    assert result["resumed_from"].endswith("step_00000003") and result["steps"] == 6
