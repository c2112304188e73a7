"""Mistakes refused before anything is uploaded, each message naming the option and the fix; a dry run that
uploads nothing; the `hub` section of a run config checked before training."""

import shutil

import pytest
from huggingface_hub import constants

from mmfm.hub import publish, resolve_source
from mmfm.hub.__main__ import main, run
from mmfm.training.config import load_config

from .conftest import binding_config


@pytest.fixture
def online_without_token(monkeypatch, tmp_path):
    """huggingface_hub as if HF_HUB_OFFLINE were unset, with no HF_TOKEN and no stored login."""
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no_token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(tmp_path / "no_tokens"))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)


def test_a_folder_that_is_neither_run_nor_model_nor_adapter(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(
        ValueError, match="a run folder .*, a model folder \\(with config.json.*adapter_config.json"
    ):
        publish(tmp_path, dry_run=True)
    with pytest.raises(FileNotFoundError, match="does not exist: give a run folder"):
        publish(tmp_path / "missing", dry_run=True)


def test_a_run_that_has_not_exported_yet(tmp_path, mae_run):
    shutil.copytree(mae_run, tmp_path / "run", ignore=shutil.ignore_patterns("model", "publish"))
    with pytest.raises(ValueError, match="has no export in model/.*has not finished"):
        publish(tmp_path / "run", dry_run=True)


def test_a_multi_task_run_needs_a_task(two_task_run, mae_run):
    with pytest.raises(
        ValueError, match="exports several models \\(a, b\\): choose the one to publish with `--task`"
    ):
        publish(two_task_run, dry_run=True)
    with pytest.raises(
        ValueError, match="`--task` 'c' is not one of the models the run .* exports: \\['a', 'b'\\]"
    ):
        resolve_source(two_task_run, "c")
    with pytest.raises(ValueError, match="`--task` 'a' applies to a multi-task run folder"):
        resolve_source(mae_run / "model", "a")


def test_push_settings_are_checked_before_anything_is_written(mae_run, tmp_path):
    with pytest.raises(ValueError, match="No `--repo-id`: .*`--dry-run`"):
        publish(mae_run)
    with pytest.raises(ValueError, match="`--repo-id` 'a/b/c' is not a valid Hub repository id"):
        publish(mae_run, "a/b/c")
    with pytest.raises(
        ValueError, match="`--create-pr` opens a pull request against main.*`--revision` 'dev'"
    ):
        publish(mae_run, "tester/x", create_pr=True, revision="dev")
    # The tests run with HF_HUB_OFFLINE=1, as a user might by mistake.
    with pytest.raises(ValueError, match="HF_HUB_OFFLINE=1 is set.*Unset it.*`--dry-run`"):
        publish(mae_run, "tester/x")
    with pytest.raises(ValueError, match="`--base-model` '/some/folder' is not a Hub model id"):
        publish(mae_run, dry_run=True, base_model="/some/folder")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="`--out` .* exists and is not an empty folder"):
        publish(mae_run, dry_run=True, out_dir=tmp_path / "out")
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["keep.txt"]


def test_a_missing_token(mae_run, online_without_token):
    with pytest.raises(
        ValueError, match="No Hugging Face token found: log in with `hf auth login`.*HF_TOKEN"
    ):
        publish(mae_run, "tester/x")


def test_the_command_line_reports_errors_and_dry_runs(mae_run, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit:
        main([str(mae_run), "--repo-id", "tester/x"])
    assert exit.value.code == 2 and "mmfm-publish: error: HF_HUB_OFFLINE=1 is set" in capsys.readouterr().err
    result = run([str(mae_run), "--dry-run", "--out", str(tmp_path / "out"), "--license", "mit"])
    printed = capsys.readouterr().out
    assert (
        f"Dry run: wrote {len(result.files)} files with the model card to {tmp_path / 'out'} (nothing uploaded)"
        in printed
    )
    assert {"README.md", "loss.png", "config.json", "model.safetensors"} <= set(result.files)
    assert result.repo_id is None and result.commit_url is None
    # The console script (`sys.exit(main())`) exits 0 on success.
    assert main([str(mae_run), "--dry-run", "--out", str(tmp_path / "again")]) == 0


def test_the_hub_section_is_checked_before_training(tmp_path, online_without_token):
    config = binding_config(tmp_path)
    with pytest.raises(ValueError, match="`hub.push_to_hub` is true but `hub.model_id` is not set"):
        load_config(config, ["hub.push_to_hub=true"])
    with pytest.raises(ValueError, match="`hub.model_id` 'not a repo' is not a valid Hub repository id"):
        load_config(config, ["hub.push_to_hub=true", "hub.model_id=not a repo"])
    with pytest.raises(ValueError, match="No Hugging Face token found"):
        load_config(config, ["hub.push_to_hub=true", "hub.model_id=tester/x"])
    with pytest.raises(ValueError, match="`hub.task` 'other' is not a task of this run"):
        load_config(config, ["hub.push_to_hub=true", "hub.model_id=tester/x", "hub.task=other"])
    with pytest.raises(
        ValueError, match="Unknown config key.*hub.push.*Valid keys under `hub`: \\[.push_to_hub., .model_id."
    ):
        load_config(config, ["hub.push=true"])
    assert load_config(config, ["hub.model_id=tester/x"]).hub.push_to_hub is False  # not pushing: no checks


def test_offline_mode_refuses_a_push_at_the_end_of_a_run(tmp_path):
    with pytest.raises(ValueError, match="HF_HUB_OFFLINE=1 is set.*`hub.push_to_hub=false`"):
        load_config(binding_config(tmp_path), ["hub.push_to_hub=true", "hub.model_id=tester/x"])
