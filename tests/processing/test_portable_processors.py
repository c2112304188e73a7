"""Saved processors load where mmfm cannot be imported: every modality's processor and the composite
`MMFMProcessor` through transformers' Auto classes (`trust_remote_code=True`) give the same outputs as in
mmfm, and exported models serve transformers' pipelines there."""

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoFeatureExtractor, AutoImageProcessor, AutoProcessor, AutoTokenizer

import mmfm
from mmfm.modalities import get_modality
from mmfm.processing import MMFMProcessor, train_tokenizer
from mmfm.processing.processing_mmfm import SUB_PROCESSORS
from tests.model_inputs import tiny_config

SCRIPT = Path(__file__).with_name("_load_processors_without_mmfm.py")
SENTENCES = ["a red circle", "a blue square on the left", "spoken digits", "molecules are graphs"] * 5
NON_TEXT_AUTO = {"vision": "AutoImageProcessor"} | dict.fromkeys(
    ["audio", "graph", "timeseries"], "AutoFeatureExtractor"
)
# (folder, Auto class, call) run without mmfm; the composite folder holds every modality.
PLAN = [
    ("text", "AutoTokenizer", "tokenizer"),
    ("text", "AutoProcessor", "tokenizer"),
    *[(m, auto, f"single:{m}") for m, auto in NON_TEXT_AUTO.items()],
    *[(m, "AutoProcessor", f"single:{m}") for m in NON_TEXT_AUTO],
    ("composite", "AutoProcessor", "composite"),
    ("composite", "AutoTokenizer", "tokenizer"),
    ("composite", "AutoImageProcessor", "single:vision"),
    ("composite", "AutoFeatureExtractor", "single:audio"),
]


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(SENTENCES, vocab_size=120, min_frequency=1, model_max_length=32)


def _inputs() -> dict:
    rng = np.random.default_rng(0)
    t = np.arange(16000) / 16000
    return {
        "items": {
            "text": ["a red circle", "a blue square on the left"],
            "vision": [
                rng.integers(0, 255, (40, 30, 3), dtype=np.uint8),
                rng.integers(0, 255, (16, 16), np.uint8),
            ],
            "audio": [
                np.sin(2 * np.pi * 440 * t).astype(np.float32),
                rng.normal(size=8000).astype(np.float32),
            ],
            "graph": [
                {"num_nodes": 3, "edge_index": np.array([[0, 1], [1, 2]])},
                {
                    "num_nodes": 2,
                    "edge_index": np.array([[0], [1]]),
                    "node_features": rng.normal(size=(2, 3)),
                },
            ],
            "timeseries": [rng.normal(size=(20, 2)), rng.normal(size=(40, 2))],
        },
        "kwargs": {"audio": {"sampling_rate": 16000}},
    }


def _run(processor, call: str, inputs: dict) -> dict:
    """What the script without mmfm does, here with mmfm's processors."""
    items, options = inputs["items"], inputs["kwargs"]
    if call == "tokenizer":
        return {"single": dict(processor(items["text"], padding=True, return_tensors="pt"))}
    if call.startswith("single:"):
        modality = call.split(":")[1]
        return {"single": dict(processor(items[modality], return_tensors="pt", **options.get(modality, {})))}
    batch = processor(**items, **{f"{m}_kwargs": o for m, o in options.items()})
    return {modality: dict(features) for modality, features in batch.items()}


def _run_without_mmfm(script: Path, workdir: Path, *args: str) -> None:
    env = {**os.environ, "HF_HOME": str(workdir / "hf_home"), "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}
    # From workdir, so the repository checkout is not on sys.path either.
    subprocess.run(
        [sys.executable, str(script), str(workdir), *args], cwd=workdir, env=env, check=True, timeout=300
    )


def _save_processors(tmp_path: Path, tokenizer) -> dict[str, MMFMProcessor]:
    """Each modality's processor and the composite's, built as a run's export builds them, saved."""
    processors = {}
    for name in [*SUB_PROCESSORS, "composite"]:
        config = tiny_config(name)
        for sub in [config.text_config] if name == "composite" else [config] if name == "text" else []:
            sub.vocab_size = 1000
        processors[name] = MMFMProcessor.from_model_config(config, tokenizer)
        processors[name].save_pretrained(tmp_path / name)
    return processors


def test_every_processor_loads_without_mmfm_with_the_same_outputs(tmp_path, tokenizer):
    processors = _save_processors(tmp_path, tokenizer)
    inputs = _inputs()
    (tmp_path / "plan.pkl").write_bytes(pickle.dumps(PLAN))
    (tmp_path / "inputs.pkl").write_bytes(pickle.dumps(inputs))
    _run_without_mmfm(SCRIPT, tmp_path)
    remote = torch.load(tmp_path / "outputs.pt")
    for folder, auto_class, call in PLAN:
        got = remote[(folder, auto_class)]
        if call == "composite":
            assert got["class"] == "MMFMProcessor", got
            expected_processor = processors[folder]
        elif call == "tokenizer":
            expected_processor = processors[folder]["text"]
        else:
            expected_processor = processors[folder][call.split(":")[1]]
        if call != "tokenizer":  # the tokenizer is transformers' own class; the others come from the folder
            assert got["module"].startswith("transformers_modules."), (folder, auto_class, got["module"])
            assert got["class"] == type(expected_processor).__name__
        expected = _run(expected_processor, call, inputs)
        assert set(got["outputs"]) == set(expected), (folder, auto_class)
        for part, features in expected.items():
            assert set(got["outputs"][part]) == set(features), (folder, auto_class, part)
            for key, value in features.items():
                torch.testing.assert_close(got["outputs"][part][key], value, rtol=0, atol=0)


def test_saved_layouts_name_only_what_loads_without_mmfm(tmp_path, tokenizer):
    _save_processors(tmp_path, tokenizer)
    # One modality: the processor alone at the top level, with its code and auto_map.
    assert not (tmp_path / "vision" / "processor_config.json").exists()
    saved = json.loads((tmp_path / "vision" / "preprocessor_config.json").read_text())
    assert saved["auto_map"] == {"AutoImageProcessor": "image_processing_mmfm.MMFMImageProcessor"}
    assert (tmp_path / "vision" / "image_processing_mmfm.py").exists()
    for name in ["text", "composite"]:
        tokenizer_config = json.loads((tmp_path / name / "tokenizer_config.json").read_text())
        assert "auto_map" not in tokenizer_config and "processor_class" not in tokenizer_config
        assert "MMFM" not in tokenizer_config["tokenizer_class"]
    assert sorted(p.name for p in (tmp_path / "text").iterdir()) == [
        "tokenizer.json",
        "tokenizer_config.json",
    ]
    # The composite: processor_config.json indexes every modality; code of every processor ships.
    saved = json.loads((tmp_path / "composite" / "processor_config.json").read_text())
    assert saved["modalities"] == list(mmfm.MODALITIES)
    assert saved["auto_map"] == {"AutoProcessor": "processing_mmfm.MMFMProcessor"}
    for modality, (attribute, processor_class) in SUB_PROCESSORS.items():
        if modality != "text":
            assert saved[attribute]["auto_map"][NON_TEXT_AUTO[modality]].endswith(
                f".{processor_class.__name__}"
            )
            assert (tmp_path / "composite" / f"{processor_class.__module__.split('.')[-1]}.py").exists()
    model_files = {p.name for p in Path(mmfm.models.__file__).parent.glob("*.py")}
    assert not model_files & {p.name for p in (tmp_path / "composite").glob("*.py")}  # one flat export folder


def test_auto_processor_with_mmfm_gives_the_composite_or_the_single_processor(tmp_path, tokenizer):
    processors = _save_processors(tmp_path, tokenizer)
    composite = AutoProcessor.from_pretrained(tmp_path / "composite")
    assert type(composite) is MMFMProcessor and composite.modalities == mmfm.MODALITIES
    inputs = _inputs()
    expected = _run(processors["composite"], "composite", inputs)
    for modality, features in _run(composite, "composite", inputs).items():
        for key, value in features.items():
            torch.testing.assert_close(value, expected[modality][key], rtol=0, atol=0)
    assert type(AutoProcessor.from_pretrained(tmp_path / "vision")).__name__ == "MMFMImageProcessor"
    assert type(AutoImageProcessor.from_pretrained(tmp_path / "composite")).__name__ == "MMFMImageProcessor"
    assert type(AutoFeatureExtractor.from_pretrained(tmp_path / "graph")).__name__ == "MMFMGraphProcessor"
    assert AutoTokenizer.from_pretrained(tmp_path / "composite").get_vocab() == tokenizer.get_vocab()
    for name in SUB_PROCESSORS:
        assert MMFMProcessor.from_pretrained(tmp_path / name).modalities == (name,)


@pytest.mark.parametrize("modality", ["vision", "audio", "graph", "timeseries"])
def test_auto_processor_on_an_encoder_export_asks_nothing_with_mmfm(tmp_path, modality, capsys):
    """With mmfm installed nothing in an export is remote code: AutoProcessor gives the encoder's processor
    without transformers asking on stdin whether to run the folder's code (for feature extractors it tried
    AutoImageProcessor first, derived a remote image processor from the auto_map and asked)."""
    config = tiny_config(modality)
    get_modality(modality).encoder_class(config).save_pretrained(tmp_path)
    MMFMProcessor.from_model_config(config).save_pretrained(tmp_path)
    processor = AutoProcessor.from_pretrained(tmp_path)
    assert type(processor) is get_modality(modality).processor_class
    assert "custom code" not in capsys.readouterr().out


def test_folders_of_earlier_versions_still_load(tmp_path, tokenizer):
    """The layout before portable processors: `mmfm_processor.json` and one subfolder per extra modality."""
    config = tiny_config("composite")
    config.text_config.vocab_size = 1000
    processor = MMFMProcessor.from_model_config(config, tokenizer)
    tokenizer.save_pretrained(tmp_path)
    for modality in ["vision", "audio", "graph", "timeseries"]:
        processor[modality].save_pretrained(tmp_path / modality)
    index = {"modalities": {m: {"class": type(p).__name__, "subfolder": "" if m == "text" else m}
                            for m, p in processor.processors.items()}}  # fmt: skip
    (tmp_path / "mmfm_processor.json").write_text(json.dumps(index))
    reloaded = MMFMProcessor.from_pretrained(tmp_path)
    assert reloaded.modalities == mmfm.MODALITIES
    inputs = _inputs()
    expected = _run(processor, "composite", inputs)
    for modality, features in _run(reloaded, "composite", inputs).items():
        for key, value in features.items():
            torch.testing.assert_close(value, expected[modality][key], rtol=0, atol=0)


def test_the_processor_table_matches_the_modality_registry():
    assert tuple(SUB_PROCESSORS) == mmfm.MODALITIES
    for modality, (_, processor_class) in SUB_PROCESSORS.items():
        assert processor_class is get_modality(modality).processor_class


def test_from_pretrained_names_what_is_wrong(tmp_path):
    with pytest.raises(FileNotFoundError, match="No processor folder"):
        MMFMProcessor.from_pretrained(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="holds no tokenizer"):
        MMFMProcessor.from_pretrained(tmp_path)
    with pytest.raises(TypeError, match="unexpected keyword.*size"):
        MMFMProcessor.from_pretrained(tmp_path, size=3)


def test_exported_models_serve_pipelines_without_mmfm(tmp_path, tokenizer):
    """Encoders and a three-tower composite saved as a run exports them (model, then its processor)."""
    from PIL import Image

    from tests.processing._pipelines_without_mmfm import run_pipelines

    torch.manual_seed(0)
    text_config = tiny_config("text", vocab_size=1000, max_position_embeddings=32)
    vision_config = tiny_config("vision")
    folders = {
        "text": (mmfm.MMFMTextModel(text_config), MMFMProcessor.from_model_config(text_config, tokenizer))
    }
    folders["vision"] = (mmfm.MMFMVisionModel(vision_config), MMFMProcessor.from_model_config(vision_config))
    config = mmfm.MMFMConfig(projection_dim=16, text_config=text_config, vision_config=vision_config,
                             audio_config=tiny_config("audio"))  # fmt: skip
    composite = MMFMProcessor.from_model_config(config, tokenizer)
    composite["audio"].return_attention_mask = False  # as binding exports do (the zero-shot audio pipeline)
    folders["composite"] = (mmfm.MMFMModel(config), composite)
    for name, (model, processor) in folders.items():
        model.eval().save_pretrained(tmp_path / name)
        processor.save_pretrained(tmp_path / name)
    rng = np.random.default_rng(0)
    inputs = {
        "image": Image.fromarray(rng.integers(0, 255, (40, 30, 3), dtype=np.uint8)),
        "clip": rng.normal(size=16000).astype(np.float32),
        "text": "a red circle",
        "labels": ["circle", "square", "triangle"],
    }
    (tmp_path / "inputs.pkl").write_bytes(pickle.dumps(inputs))
    _run_without_mmfm(SCRIPT.with_name("_pipelines_without_mmfm.py"), tmp_path)
    remote = torch.load(tmp_path / "pipeline_outputs.pt", weights_only=False)
    assert all(module.startswith("transformers_modules.") for module in remote["modules"].values()), remote

    vision_model, vision_processor = folders["vision"]
    with torch.no_grad():
        expected = vision_model(**vision_processor(vision=[inputs["image"]])["vision"]).last_hidden_state
    torch.testing.assert_close(remote["image-feature-extraction"], expected, rtol=0, atol=0)
    local = run_pipelines(str(tmp_path), inputs)  # the same pipelines with mmfm's classes
    torch.testing.assert_close(remote["feature-extraction"], local["feature-extraction"], rtol=0, atol=0)
    for task in ["zero-shot-image-classification", "zero-shot-audio-classification"]:
        assert [a["label"] for a in remote[task]] == [a["label"] for a in local[task]], task
        assert [a["score"] for a in remote[task]] == pytest.approx(
            [a["score"] for a in local[task]], abs=1e-6
        )
        assert sorted(a["label"] for a in remote[task]) == sorted(inputs["labels"])


def test_each_processor_class_reads_its_own_entry_of_a_composite_folder(tmp_path, tokenizer):
    processors = _save_processors(tmp_path, tokenizer)
    for modality in ["vision", "audio", "graph", "timeseries"]:
        expected = processors["composite"][modality]
        loaded = type(expected).from_pretrained(tmp_path / "composite")
        assert loaded.to_dict() == expected.to_dict(), modality
    with pytest.raises(
        ValueError, match="settings of a MMFMAudioFeatureExtractor, not of a MMFMGraphProcessor"
    ):
        type(processors["graph"]["graph"]).from_pretrained(tmp_path / "audio")
