"""`pip install mmfm` can pretrain: the wheel carries the recipes, their configs and the console scripts."""

import shutil
import subprocess
import sys
import zipfile
from configparser import ConfigParser
from pathlib import Path

import pytest

from mmfm.recipes import CONFIGS, shipped_configs
from mmfm.training.config import load_config, resolve_config_path

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built from a copy of the sources: setuptools builds in the source folder (`build/`,
    `*.egg-info`), which other test processes read at the same time."""
    source = tmp_path_factory.mktemp("source") / "mmfm"
    skip = shutil.ignore_patterns(
        ".git", ".venv", ".cache", "outputs", "build", "*.egg-info", "__pycache__", ".pytest_cache"
    )
    shutil.copytree(REPO, source, symlinks=True, ignore=skip)
    out = tmp_path_factory.mktemp("wheel")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(out), str(source)],
        check=False, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr[-3000:]
    (found,) = out.glob("mmfm-*.whl")
    return found


def test_wheel_ships_recipes_configs_and_scripts(wheel):
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        scripts = ConfigParser()
        scripts.read_string(archive.read(entry_points).decode())
    assert "mmfm/recipes/pretrain.py" in names
    for name in shipped_configs():
        assert f"mmfm/recipes/configs/{name}.yaml" in names
    assert scripts["console_scripts"]["mmfm-pretrain"] == "mmfm.recipes.pretrain:cli"
    assert scripts["console_scripts"]["mmfm-finetune"] == "mmfm.recipes.finetune:cli"
    assert scripts["console_scripts"]["mmfm-publish"] == "mmfm.hub.__main__:main"


def test_shipped_config_by_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no checkout around: the name alone finds the shipped file
    assert resolve_config_path("mae") == CONFIGS / "mae.yaml"
    assert resolve_config_path("mae.yaml") == CONFIGS / "mae.yaml"
    assert load_config("default").tasks
    local = tmp_path / "mae.yaml"
    local.write_text("output_dir: mine\ntasks: {}\n")
    assert resolve_config_path("mae.yaml").resolve() == local  # a file of that name wins


def test_unknown_config_lists_shipped(tmp_path):
    with pytest.raises(
        FileNotFoundError, match=r"not the name of a config shipped with mmfm \(.*default.*mae"
    ):
        resolve_config_path("no_such_recipe")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resolve_config_path(tmp_path / "missing.yaml")


def test_installed_wheel_runs_without_a_checkout(wheel, tmp_path):
    """Installed from the wheel alone (no repository around), the recipes find their shipped configs."""
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target), str(wheel)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(target), "HF_HUB_OFFLINE": "1", "HOME": str(tmp_path)}
    check = (
        "import mmfm.recipes.pretrain as p, mmfm.recipes.finetune as f; from pathlib import Path;"
        f"assert Path(p.__file__).is_relative_to(r'{target}');"
        "from mmfm.training.config import load_config;"
        "from mmfm.training.finetune_config import load_finetune_config;"
        "print(sorted(load_config('mae').tasks), load_finetune_config('finetune/vision').modality)"
    )
    result = subprocess.run(
        [sys.executable, "-c", check],
        check=False,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["['mae']", "vision"]
    for script in ("mmfm", "mmfm-pretrain", "mmfm-finetune", "mmfm-publish"):
        assert (target / "bin" / script).is_file()
