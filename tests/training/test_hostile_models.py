"""A saved model whose weights do not fit its config.json is refused when a run continues it (`init_from`),
naming the folder, what does not fit (counts and examples) and the fix; transformers alone would only warn
and start those weights from random values. A bare encoder (an export, or an encoder never pretrained) still
continues, its objective's heads starting fresh."""

import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from mmfm.models import (
    MMFMTextConfig,
    MMFMTextForMaskedLM,
    MMFMVisionConfig,
    MMFMVisionForDropPos,
    MMFMVisionForMAE,
    MMFMVisionModel,
)
from mmfm.models.modeling_mmfm_vision_mae import MAEConfig
from mmfm.training.config import parse_command_line
from mmfm.training.tasks import build_model

DEFAULT = Path(__file__).resolve().parent / "mlm_demo.yaml"  # an MLM run (the embedded default binds)
TINY = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64}


def _vision_config(**overrides) -> MMFMVisionConfig:
    fields = {"image_size": 16, "patch_size": 4, **TINY, "pretraining_config": MAEConfig.presets["tiny"]}
    return MMFMVisionConfig.from_preset("tiny", **{**fields, **overrides})


def _build(folder: Path, objective: str = "mae"):
    task = parse_command_line(
        [
            f"tasks.v.objective={objective}",
            "tasks.v.data.subsets=[digits]",
            f"tasks.v.model.init_from={folder}",
        ],
        default=DEFAULT,
    ).tasks["v"]
    return build_model(task, "tasks.v", None, "sdpa")


def _frankenstein(root: Path, name: str, config_from: Path, weights: dict[str, torch.Tensor]) -> Path:
    """A folder with the config.json of `config_from` and the given weights."""
    folder = root / name
    folder.mkdir()
    shutil.copy(config_from / "config.json", folder)
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    return folder


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hostile_models")
    torch.manual_seed(0)
    MMFMVisionForMAE(_vision_config()).save_pretrained(root / "mae")
    MMFMVisionForMAE(_vision_config(hidden_size=64)).save_pretrained(root / "mae_wide")
    text = MMFMTextConfig.from_preset("tiny", vocab_size=100, **TINY)
    MMFMTextForMaskedLM(text).save_pretrained(root / "mlm")
    MMFMVisionModel(_vision_config()).save_pretrained(root / "encoder")  # never pretrained: no objective
    mae = load_file(root / "mae" / "model.safetensors")
    return {
        "mae": root / "mae",
        "encoder": root / "encoder",
        "text_weights": _frankenstein(
            root, "text_weights", root / "mae", load_file(root / "mlm" / "model.safetensors")
        ),
        "wide_weights": _frankenstein(
            root, "wide_weights", root / "mae", load_file(root / "mae_wide" / "model.safetensors")
        ),
        "partial_heads": _frankenstein(
            root,
            "partial_heads",
            root / "mae",
            {k: v for k, v in mae.items() if not k.startswith("decoder_pred.")},
        ),
    }


def test_weights_of_another_model_are_refused_naming_the_folder_counts_and_fix(saved):
    folder = saved["text_weights"]
    with pytest.raises(ValueError) as raised:
        _build(folder)
    message = str(raised.value)
    assert f"`tasks.v.model.init_from` = {str(folder)!r}" in message
    assert "MMFMVisionConfig" in message and "MMFMVisionForMAE" in message
    assert "encoder weight(s) missing (e.g. ['encoder.embeddings." in message
    assert "unexpected weight(s) (e.g. ['encoder.embeddings.word_embeddings.weight'" in message
    assert "Point init_from at the folder the weights were saved with" in message


def test_weights_of_another_shape_are_refused(saved):
    with pytest.raises(ValueError) as raised:
        _build(saved["wide_weights"])
    message = str(raised.value)
    assert str(saved["wide_weights"]) in message and "18 weight(s) of another shape" in message
    assert "encoder.embeddings.cls_token (saved (1, 1, 64), model (1, 1, 32))" in message


def test_a_checkpoint_with_part_of_the_heads_is_refused(saved):
    with pytest.raises(
        ValueError, match=r"2 head weight\(s\) missing while others were saved.*decoder_pred\.bias"
    ):
        _build(saved["partial_heads"])


def test_a_bare_encoder_continues_with_fresh_heads(saved):
    encoder = MMFMVisionModel.from_pretrained(saved["encoder"])
    for objective, model_class in (("mae", MMFMVisionForMAE), ("droppos", MMFMVisionForDropPos)):
        model = _build(saved["encoder"], objective)  # DropPos's encoder-side position token starts fresh too
        assert type(model) is model_class
        for key, value in encoder.state_dict().items():
            assert torch.equal(model.encoder.state_dict()[key], value), (objective, key)
    assert type(_build(saved["mae"])) is MMFMVisionForMAE  # a complete save loads as before
