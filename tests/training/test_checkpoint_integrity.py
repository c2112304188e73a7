"""Checkpoints are verified and never execute code: every checkpoint has a manifest of sizes and checksums;
resuming skips a damaged newest checkpoint (naming the damage) for the newest intact one; a crafted
pickle is refused without running; the schedule is JSON; a full disk during a save keeps the previous
checkpoint and says how to continue."""

import errno
import io
import json
import logging
import os
import shutil

import pytest
import torch
from accelerate import Accelerator

from mmfm.training.checkpointing import (
    MANIFEST,
    CheckpointError,
    _describe_files,
    complete_checkpoints,
    safe_loading,
    verify_checkpoint,
)

from ._runs import mae_run, max_difference, metrics, run_in_process, weights


class _RunsCode:
    """Unpickling this runs `touch <path>` (what a crafted checkpoint would do, with worse commands)."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


@pytest.fixture(scope="module")
def saved_run(tmp_path_factory):
    """A run of 4 steps with checkpoints at steps 2 and 4, and its exported weights."""
    root = tmp_path_factory.mktemp("integrity")
    run_in_process(*mae_run(root, "training.max_steps=4", "checkpointing.save_every=2"))
    return root, weights(root / "run" / "model")


def _copy(saved_run, tmp_path):
    root, reference = saved_run
    shutil.copytree(root / "run", tmp_path / "run")
    return tmp_path / "run" / "checkpoints", reference


def test_every_checkpoint_has_a_manifest_and_no_pickled_schedule(saved_run):
    checkpoints = complete_checkpoints(saved_run[0] / "run" / "checkpoints")
    assert [c.name for c in checkpoints] == ["step_00000002", "step_00000004"]
    for folder in checkpoints:
        assert verify_checkpoint(folder) == []
        files = json.loads((folder / MANIFEST).read_text())["files"]
        assert {"model.safetensors", "optimizer.bin", "trainer_state_0.json", "run_config.yaml"} <= set(files)
        assert not list(folder.glob("custom_checkpoint_*"))  # the schedule is in the JSON trainer state
        assert "base_lrs" in json.loads((folder / "trainer_state_0.json").read_text())["scheduler"]


@pytest.mark.parametrize(
    "damaged", ["model.safetensors", "optimizer.bin", "random_states_0.pkl", "trainer_state_0.json"]
)
def test_a_damaged_newest_checkpoint_falls_back_to_the_previous_intact_one(
    saved_run, tmp_path, caplog, damaged
):
    checkpoints, _ = _copy(saved_run, tmp_path)
    target = checkpoints / "step_00000004" / damaged
    target.write_bytes(target.read_bytes()[: target.stat().st_size // 2])  # what a crash mid-write leaves
    with caplog.at_level(logging.WARNING):
        result = run_in_process(*mae_run(tmp_path, "training.max_steps=4", "checkpointing.save_every=2"))
    assert result["resumed_from"].endswith("step_00000002") and result["steps"] == 4
    assert f"step_00000004 is damaged ({damaged} is truncated or changed" in caplog.text


def test_resuming_past_a_damaged_checkpoint_reaches_the_uninterrupted_weights(saved_run, tmp_path):
    checkpoints, reference = _copy(saved_run, tmp_path)
    rng = checkpoints / "step_00000004" / "random_states_0.pkl"
    rng.write_bytes(rng.read_bytes()[:100])
    run_in_process(*mae_run(tmp_path, "training.max_steps=4", "checkpointing.save_every=2"))
    assert max_difference(weights(tmp_path / "run" / "model"), reference) == 0.0


def test_no_intact_checkpoint_stops_naming_every_damage(saved_run, tmp_path):
    checkpoints, _ = _copy(saved_run, tmp_path)
    (checkpoints / "step_00000002" / "optimizer.bin").unlink()
    (checkpoints / "step_00000004" / MANIFEST).write_text("{not json")
    with pytest.raises(CheckpointError, match="No intact checkpoint") as raised:
        run_in_process(*mae_run(tmp_path, "training.max_steps=5"))
    message = str(raised.value)
    assert "optimizer.bin is missing" in message and "manifest.json is damaged" in message
    assert "checkpointing.resume=" in message


def test_a_named_damaged_checkpoint_is_refused(saved_run, tmp_path):
    checkpoints, _ = _copy(saved_run, tmp_path)
    state = checkpoints / "step_00000002" / "trainer_state_0.json"
    state.write_text(state.read_text().replace('"step": 2', '"step": 9'))
    with pytest.raises(CheckpointError, match="trainer_state_0.json is (damaged|truncated)"):
        run_in_process(*mae_run(tmp_path, "training.max_steps=5"),
                       f"checkpointing.resume={checkpoints / 'step_00000002'}")  # fmt: skip


@pytest.mark.parametrize("crafted", ["optimizer.bin", "random_states_0.pkl"])
def test_a_crafted_pickle_in_a_checkpoint_never_runs(saved_run, tmp_path, crafted):
    checkpoints, _ = _copy(saved_run, tmp_path)
    newest = checkpoints / "step_00000004"
    witness = tmp_path / "code-ran"
    buffer = io.BytesIO()
    torch.save({"state": _RunsCode(witness)}, buffer)
    (newest / crafted).write_bytes(buffer.getvalue())
    # An attacker who shares the folder rewrites the manifest too, so the checksums match.
    manifest = json.loads((newest / MANIFEST).read_text())
    manifest["files"] = _describe_files(newest)
    (newest / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match=f"{crafted}|could run code"):
        run_in_process(*mae_run(tmp_path, "training.max_steps=5"))
    assert not witness.exists()


def test_safe_loading_refuses_code_even_where_a_library_asks_for_full_unpickling(tmp_path):
    # DeepSpeed loads its ZeRO files with `torch.load(..., weights_only=False)`.
    witness = tmp_path / "code-ran"
    path = tmp_path / "mp_rank_00_model_states.pt"
    torch.save({"module": _RunsCode(witness)}, path)
    with safe_loading(), pytest.raises(Exception, match="Weights only load failed"):
        torch.load(path, weights_only=False)
    assert not witness.exists()
    torch.save({"module": {"w": torch.ones(2)}, "ds_version": "0.19"}, path)
    with safe_loading():
        assert torch.load(path, weights_only=False)["ds_version"] == "0.19"


def test_a_full_disk_during_a_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    save_state, calls = Accelerator.save_state, [0]

    def save_state_until_the_disk_is_full(self, output_dir=None, **kwargs):
        calls[0] += 1
        if calls[0] == 2:
            with open(os.path.join(output_dir, "model.safetensors"), "wb") as partial:
                partial.write(b"partial")  # what a write cut short by the full disk leaves
            raise OSError(errno.ENOSPC, "No space left on device")
        return save_state(self, output_dir, **kwargs)

    monkeypatch.setattr(Accelerator, "save_state", save_state_until_the_disk_is_full)
    with pytest.raises(CheckpointError) as raised:
        run_in_process(*mae_run(tmp_path, "training.max_steps=4", "checkpointing.save_every=2"))
    message = str(raised.value)
    assert "step 4" in message and "No space left on device" in message
    assert "step_00000002 is intact" in message and "run the same command" in message
    checkpoints = tmp_path / "run" / "checkpoints"
    assert [p.name for p in checkpoints.iterdir()] == ["step_00000002"]  # no partial copy left
    assert verify_checkpoint(checkpoints / "step_00000002") == []
    monkeypatch.undo()
    result = run_in_process(*mae_run(tmp_path, "training.max_steps=4", "checkpointing.save_every=2"))
    assert result["resumed_from"].endswith("step_00000002") and metrics(tmp_path / "run")["steps"] == 4
