"""The recipes: short, config-driven entry points that string `mmfm.training` together.

`recipes/*.py` in the repository are thin launchers of these modules; installed, they are the console scripts
`mmfm-pretrain` (and `accelerate launch -m mmfm.recipes.pretrain`). Their run configs ship in `configs/`
(`shipped_config` resolves a name such as `mae` to one of them).
"""

from pathlib import Path

CONFIGS = Path(__file__).parent / "configs"


def shipped_configs() -> list[str]:
    """Names of the run configs shipped with mmfm (`default`, `mae`, `clip`, ..., `continue/vision`, ...)."""
    return sorted(path.relative_to(CONFIGS).with_suffix("").as_posix() for path in CONFIGS.rglob("*.yaml"))


__all__ = ["CONFIGS", "shipped_configs"]
