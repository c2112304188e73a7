"""The run folder is never lost: unsafe and foreign folders are refused (and never deleted), a live run's
folder is locked against a second run, a crashed run's lock is taken over, `run_config.yaml` appears only
once a run trains and is restored from a checkpoint when damaged, and a folder deleted mid-run is
recreated with the run's state."""

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mmfm.training.run_folder import LOCK, MARKER, RUN_FILE, acquire_lock

from ._runs import REPO, mae_run, metrics, run_in_process, write_run_config


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(
    ("output_dir", "words"),
    [
        ("''", "is empty"),
        (".", "the current folder"),
        ("..", "a parent of the current folder"),
        ("/", "root"),
    ],
)
def test_unsafe_output_dirs_are_refused_and_nothing_is_deleted(tmp_path, monkeypatch, output_dir, words):
    work = tmp_path / "project" / "work"
    work.mkdir(parents=True)
    (work / "notes.txt").write_text("mine")
    (tmp_path / "project" / "data.csv").write_text("a,b\n")
    monkeypatch.chdir(work)
    argv = mae_run(tmp_path, "training.max_steps=1")  # writes its config file
    before = _snapshot(tmp_path)
    with pytest.raises(ValueError, match=f"`output_dir`.*{words}") as raised:
        run_in_process(*argv, f"output_dir={output_dir}", "overwrite_output_dir=true")
    assert "choose a subfolder" in str(raised.value) or "name the run folder" in str(raised.value)
    assert _snapshot(tmp_path) == before


def test_the_home_folder_is_refused(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    (home / ".bashrc").write_text("keep me")
    monkeypatch.setenv("HOME", str(home))
    with pytest.raises(ValueError, match="your home folder"):
        run_in_process(
            *mae_run(tmp_path, "training.max_steps=1"), "output_dir='~'", "overwrite_output_dir=true"
        )
    assert (home / ".bashrc").read_text() == "keep me"


def test_overwrite_never_deletes_a_folder_mmfm_did_not_create(tmp_path):
    foreign = tmp_path / "photos"
    foreign.mkdir()
    (foreign / "holiday.jpg").write_bytes(b"\xff\xd8")
    with pytest.raises(ValueError, match=f"was not created by mmfm \\(no {MARKER} marker\\)"):
        run_in_process(
            *mae_run(tmp_path, "training.max_steps=1"), f"output_dir={foreign}", "overwrite_output_dir=true"
        )
    assert (foreign / "holiday.jpg").read_bytes() == b"\xff\xd8"


def test_overwrite_deletes_an_mmfm_run_and_starts_over(tmp_path):
    run_in_process(*mae_run(tmp_path, "training.max_steps=2"))
    result = run_in_process(*mae_run(tmp_path, "training.max_steps=3", "training.learning_rate=0.01"),
                            "overwrite_output_dir=true")  # fmt: skip
    assert result["steps"] == 3 and result["resumed_from"] is None
    assert (tmp_path / "run" / MARKER).is_file()


def test_a_second_run_into_a_live_folder_is_refused_naming_the_holder(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / MARKER).write_text("{}")
    held = acquire_lock(out)  # another open file description: conflicts like another process would
    try:
        with pytest.raises(
            ValueError, match=f"in use by another run \\(pid {os.getpid()} on host .*, started"
        ):
            run_in_process(*mae_run(tmp_path, "training.max_steps=1"), "overwrite_output_dir=true")
        assert not (out / "checkpoints").exists()  # overwrite did not touch the live run
    finally:
        os.close(held)


def test_the_lock_of_a_crashed_run_is_taken_over(tmp_path, caplog):
    out = tmp_path / "run"
    out.mkdir()
    (out / MARKER).write_text("{}")
    # A process that takes the lock and is killed (as by the OOM killer) before it can release it.
    hold_the_lock = (
        "import sys, time; from pathlib import Path; from mmfm.training.run_folder import acquire_lock; "
        "acquire_lock(Path(sys.argv[1])); print('locked', flush=True); time.sleep(600)"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", hold_the_lock, str(out)], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout.readline().strip() == "locked"
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    with caplog.at_level(logging.INFO, logger="mmfm.training.run_folder"):
        result = run_in_process(*mae_run(tmp_path, "training.max_steps=1"))
    assert result["steps"] == 1
    assert f"pid {holder.pid}" in caplog.text and "ended without releasing it" in caplog.text
    assert str(os.getpid()) in (out / LOCK).read_text()


def test_a_start_that_fails_leaves_no_run_record_and_the_fixed_command_runs(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    bad = mae_run(tmp_path, "training.max_steps=1", f"tasks.mae.data.source={empty}")
    with pytest.raises(ValueError, match="tasks.mae.data"):
        run_in_process(*bad)
    assert not (tmp_path / "run" / RUN_FILE).exists()
    result = run_in_process(*mae_run(tmp_path, "training.max_steps=1"))  # the corrected command
    assert result["steps"] == 1 and (tmp_path / "run" / RUN_FILE).is_file()


@pytest.mark.parametrize("damage", ["empty", "truncated", "deleted"])
def test_a_damaged_run_record_is_restored_from_the_newest_checkpoint(tmp_path, caplog, damage):
    run_in_process(*mae_run(tmp_path, "training.max_steps=2"))
    run_file = tmp_path / "run" / RUN_FILE
    intact = run_file.read_text()
    if damage == "deleted":
        run_file.unlink()
    else:
        run_file.write_text("" if damage == "empty" else intact[: len(intact) // 3])
    with caplog.at_level(logging.WARNING, logger="mmfm.training.run_folder"):
        result = run_in_process(*mae_run(tmp_path, "training.max_steps=3"))
    assert result["resumed_from"].endswith("step_00000002") and result["steps"] == 3
    assert "restored it from" in caplog.text
    assert yaml.safe_load(run_file.read_text())["tasks"] == yaml.safe_load(intact)["tasks"]


def test_a_task_named_by_a_path_is_refused(tmp_path):
    config = write_run_config(tmp_path / "run.yaml", {"tasks": {"/tmp/escape": {"objective": "mae"}}})
    with pytest.raises(ValueError, match="Task name '/tmp/escape' must be a plain folder name"):
        run_in_process("--config", str(config), f"output_dir={tmp_path / 'run'}")


def test_a_folder_deleted_mid_run_is_recreated_and_the_same_command_continues(tmp_path, monkeypatch, caplog):
    import shutil

    from mmfm.training import Trainer

    log, deleted = Trainer._log, []

    def log_then_delete(self):
        record = log(self)
        if self.step == 2 and not deleted:
            shutil.rmtree(self.output_dir)  # what an over-eager cleanup script does
            deleted.append(True)
        return record

    monkeypatch.setattr(Trainer, "_log", log_then_delete)
    with caplog.at_level(logging.WARNING, logger="mmfm.training.run_folder"):
        result = run_in_process(*mae_run(tmp_path, "training.max_steps=3"))
    assert deleted and result["steps"] == 3 and "disappeared while the run was training" in caplog.text
    out = tmp_path / "run"
    assert (
        (out / MARKER).is_file()
        and (out / RUN_FILE).is_file()
        and (out / "model" / "model.safetensors").is_file()
    )
    assert metrics(out)["steps"] == 3
    monkeypatch.undo()
    again = run_in_process(*mae_run(tmp_path, "training.max_steps=4"))
    assert again["resumed_from"].endswith("step_00000003") and again["steps"] == 4
