"""Pushing to a Hub: `python -m mmfm.hub` against the fake Hub on 127.0.0.1 (in subprocesses, since
huggingface_hub reads HF_ENDPOINT and HF_HUB_OFFLINE when imported). The repository is created with its
visibility, each commit carries its message, pull requests and branches land where asked, exactly the export's
files arrive byte for byte with the card and the loss plot, and the pushed model loads from that Hub without
mmfm."""

import subprocess
import sys
from pathlib import Path

import torch
from huggingface_hub import ModelCard

from mmfm.hub import publish
from tests.training._runs import weights

from .conftest import REPO, push_env
from .fake_hub import FakeHub

LOAD_WITHOUT_MMFM = Path(__file__).with_name("_load_from_hub.py")


def _python(args: list[str], env: dict, timeout: float = 240) -> str:
    result = subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=timeout, check=False)  # fmt: skip
    assert result.returncode == 0, (
        f"{args} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result.stdout + result.stderr


def _expected_files(run: Path) -> dict[str, bytes]:
    files = {p.name: p.read_bytes() for p in (run / "model").iterdir() if p.is_file()}
    return {**files, "loss.png": (run / "loss.png").read_bytes()}


def test_a_run_is_pushed_with_its_card_and_loads_from_the_hub_without_mmfm(binding_run, tmp_path):
    dry = publish(binding_run, "tester/clip-demo", dry_run=True, out_dir=tmp_path / "dry")
    with FakeHub() as hub:
        env = push_env(hub.url, tmp_path / "hf_home")
        output = _python(["-m", "mmfm.hub", str(binding_run), "--repo-id", "tester/clip-demo", "--private",
                          "--commit-message", "First version"], env)  # fmt: skip
        assert (
            f"Pushed {len(dry.files)} files to tester/clip-demo: {hub.url}/tester/clip-demo/commit/" in output
        )
        repo = hub.repos["tester/clip-demo"]
        assert repo.private and len(hub.commits) == 1
        first = hub.commits[0]
        assert (first.summary, first.revision, first.pull_request) == ("First version", "main", False)
        # Exactly the export, the loss plot and the card, byte for byte; the card is the dry run's.
        expected = _expected_files(binding_run)
        assert sorted(first.files) == sorted([*expected, "README.md"])
        assert all(first.files[name] == content for name, content in expected.items())
        assert first.files["README.md"] == (dry.folder / "README.md").read_bytes()
        assert ModelCard(first.files["README.md"].decode()).data.eval_results

        # A pull request, a branch, and a token the Hub refuses, in one interpreter.
        script = f"""
import os
from mmfm.hub.__main__ import main
run = {str(binding_run)!r}
main([run, "--repo-id", "tester/clip-demo", "--create-pr"])
main([run, "--repo-id", "tester/clip-demo", "--revision", "dev", "--commit-message", "On dev"])
os.environ["HF_TOKEN"] = "not-a-token"
try:
    main([run, "--repo-id", "tester/clip-demo"])
except SystemExit as exit:
    print("exit", exit.code)
"""
        output = _python(["-c", script], env)
        pr, dev = hub.commits[1:]
        assert (pr.summary, pr.ref, pr.pull_request) == (
            "Upload MMFMModel trained with mmfm (4 steps)",
            "refs/pr/1",
            True,
        )
        assert repo.pull_requests == [pr.summary] and sorted(pr.files) == sorted(first.files)
        assert (
            f"Pushed {len(dry.files)} files to tester/clip-demo: {hub.url}/tester/clip-demo/discussions/1"
            in output
        )
        assert (dev.summary, dev.revision, dev.ref) == ("On dev", "dev", "dev") and "dev" in repo.refs
        assert "exit 2" in output and "refused the token" in output and len(hub.commits) == 3

        # The pushed model, downloaded from that Hub, loads without mmfm with the same weights and tokenizer.
        _python([str(LOAD_WITHOUT_MMFM), "tester/clip-demo", str(tmp_path / "loaded.pt")], env)
    loaded = torch.load(tmp_path / "loaded.pt")
    assert loaded["module"].startswith("transformers_modules")
    saved = weights(binding_run / "model")
    assert sorted(loaded["state_dict"]) == sorted(saved)
    assert all(torch.equal(loaded["state_dict"][k], saved[k]) for k in saved)
    from transformers import AutoTokenizer

    local = AutoTokenizer.from_pretrained(binding_run / "model")
    assert loaded["input_ids"] == local("a handwritten digit seven")["input_ids"]
