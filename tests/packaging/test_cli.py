"""`mmfm <command>`: the umbrella console script dispatches to each recipe and tool."""

import pytest

from mmfm.cli import COMMANDS, main
from mmfm.processing import MMFMProcessor
from tests.model_inputs import build_model


def test_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    printed = capsys.readouterr().out
    for command in ("pretrain", "finetune", "publish", "demo-data"):
        assert command in printed and command in COMMANDS
    assert main([]) == 2


def test_an_unknown_command_is_named(capsys):
    assert main(["pretrian"]) == 2
    assert "unknown command 'pretrian'; commands are pretrain, finetune" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["pretrain", "finetune"])
def test_recipe_help_shows_the_command(command, capsys):
    with pytest.raises(SystemExit) as done:
        main([command, "--help"])
    assert done.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: mmfm {command} [-h] [--config CONFIG]")


def test_publish_dry_run(tmp_path):
    model = build_model("vision")
    model.save_pretrained(tmp_path / "model")
    MMFMProcessor.from_model_config(model.config).save_pretrained(tmp_path / "model")
    assert main(["publish", str(tmp_path / "model"), "--dry-run", "--out", str(tmp_path / "out")]) == 0
    assert {"README.md", "config.json", "model.safetensors", "preprocessor_config.json"} <= {
        path.name for path in (tmp_path / "out").iterdir()
    }


@pytest.mark.parametrize("loader", ["pretrain", "finetune"])
def test_both_recipes_honour_training_deterministic(loader, monkeypatch):
    """`seed_run` (what both recipes call) turns deterministic kernels on when the config asks."""
    from mmfm.training.config import load_config
    from mmfm.training.finetune_config import load_finetune_config
    from mmfm.training.session import seed_run

    calls, seeds = [], []
    monkeypatch.setattr("torch.use_deterministic_algorithms", calls.append)
    monkeypatch.setattr("mmfm.training.session.set_seed", lambda seed, device_specific: seeds.append(seed))
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    load = load_config if loader == "pretrain" else load_finetune_config
    seed_run(load(None, [], default="mae" if loader == "pretrain" else "vision"))
    assert calls == []
    seed_run(load(None, ["training.deterministic=true"], default="mae" if loader == "pretrain" else "vision"))
    assert calls == [True] and seeds == [0, 0]
    import os

    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
