"""Binding runs (`objective: clip` / `siglip`): the recipe trains an `MMFMModel` on paired demo subsets in
`pairs` and `anchor` modes, resumes exactly, exports a folder the zero-shot pipeline and `AutoModel` load,
and refuses bad binding settings before training."""

import json

import pytest
import torch
from transformers import AutoModel, pipeline

from mmfm.data.demo import load_demo_dataset
from mmfm.models import MMFMModel

from ._runs import TINY, max_difference, metrics, run_in_process, weights, write_run_config

TOWERS = {
    "text": {**TINY, "max_position_embeddings": 32},
    "vision": {**TINY, "image_size": 16, "patch_size": 4},
    "audio": TINY,
    "graph": TINY,
    "timeseries": TINY,
}
PAIRS = {
    "text": None,
    "vision": "digit_captions",
    "audio": "spoken_digit_transcripts",
    "graph": "molecule_names",
    "timeseries": "series_captions",
}


def binding_run(tmp_path, modalities, mode="pairs", objective="clip", *extra, subsets=None, **binding):
    """Recipe arguments of a tiny binding run of `modalities` on their paired demo subsets, batch 8."""
    subsets = subsets or [PAIRS[m] for m in modalities if PAIRS[m]] or ["digit_captions"]
    task = {
        "objective": objective,
        "binding": {"modalities": list(modalities), "mode": mode, "projection_dim": 16, **binding},
        "model": {"config": {m: TOWERS[m] for m in modalities}},
        "data": {"source": "demo", "subsets": subsets, "max_length": 16},
    }
    config = write_run_config(tmp_path / "bind.yaml", {
        "tasks": {"bind": task},
        "training": {"per_device_batch_size": 8, "warmup_ratio": 0.0, "max_steps": 4},
        "checkpointing": {"save_every": 0},
        "logging": {"log_every": 1, "progress_bar": False, "report_to": []},
    })  # fmt: skip
    return ["--config", str(config), f"output_dir={tmp_path / 'run'}", *extra]


@pytest.mark.parametrize("objective", ["clip", "siglip"])
def test_a_text_image_run_exports_a_model_the_zero_shot_pipeline_uses(tmp_path, objective):
    result = run_in_process(*binding_run(tmp_path, ["text", "vision"], "pairs", objective))
    assert result["steps"] == 4 and all(torch.isfinite(torch.tensor(r["loss"])) for r in result["history"])
    folder = tmp_path / "run" / "model"
    model = AutoModel.from_pretrained(folder)
    assert isinstance(model, MMFMModel) and model.config.loss_type == objective
    assert (model.logit_bias is not None) == (objective == "siglip")
    classify = pipeline("zero-shot-image-classification", model=str(folder))
    image = load_demo_dataset("vision", "digits")["test"][0]["image"]
    answer = classify(
        image, candidate_labels=["zero", "one", "two"], hypothesis_template="a handwritten digit {}"
    )
    assert sorted(a["label"] for a in answer) == ["one", "two", "zero"]
    assert all(0 <= a["score"] <= 1 for a in answer)


def test_anchor_mode_takes_turns_over_the_pairs_and_resumes_exactly(tmp_path):
    import shutil

    args = binding_run(tmp_path, ["text", "vision", "audio", "timeseries"], "anchor", "clip",
                       "training.max_steps=6", "checkpointing.save_every=3")  # fmt: skip
    whole = run_in_process(*args)
    assert whole["steps"] == 6
    run = tmp_path / "run"
    state = json.loads((run / "checkpoints" / "step_00000006" / "trainer_state_0.json").read_text())
    assert state["streams"]["bind"]["draws"] == 6 and len(state["streams"]["bind"]["streams"]) == 3
    reference = weights(run / "model")
    # A crash after step 3: only its checkpoint is left; the same command continues to the same weights.
    shutil.rmtree(run / "checkpoints" / "step_00000006")
    shutil.rmtree(run / "model")
    resumed = run_in_process(*args)
    assert resumed["resumed_from"].endswith("step_00000003")
    assert max_difference(weights(run / "model"), reference) == 0


@pytest.mark.parametrize(
    ("binding", "data", "error"),
    [
        ({"modalities": ["text", "graph"]}, {"subsets": ["digit_captions"]}, "carries \\['text', 'vision'\\]"),
        ({"modalities": ["text", "vision", "audio"], "mode": "anchor", "anchor": "graph"}, {},
         "`tasks.bind.binding.anchor` = 'graph' is not among"),
        ({"modalities": ["text", "vision", "audio"], "mode": "pairs"}, {}, "pairs binds exactly two"),
        ({"modalities": ["text"]}, {}, "at least two different modalities"),
        ({"modalities": ["text", "video"]}, {}, "names \\['video'\\]"),
        ({"modalities": ["text", "vision"], "lock": {"audio": 0}}, {}, "binding.lock` names \\['audio'\\]"),
    ],
)  # fmt: skip
def test_bad_binding_settings_are_refused_before_training(tmp_path, binding, data, error):
    modalities = binding["modalities"]
    args = binding_run(tmp_path, [m for m in modalities if m in TOWERS] or ["text", "vision"],
                       subsets=data.get("subsets"))  # fmt: skip
    overrides = [f"tasks.bind.binding.{k}={json.dumps(v)}" for k, v in binding.items()]
    with pytest.raises(ValueError, match=error):
        run_in_process(*args, *overrides)
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_a_global_batch_of_one_row_is_refused(tmp_path):
    with pytest.raises(ValueError, match="needs negatives: a global batch of 1 row has none"):
        run_in_process(*binding_run(tmp_path, ["text", "vision"]), "training.per_device_batch_size=1")


def test_rows_missing_one_side_are_skipped_and_counted(tmp_path):
    from ._runs import write_images

    images = write_images(tmp_path / "images", per_class=8)
    rows = [
        {"image": str(p), "text": None if i % 4 == 0 else f"a {p.parent.name} square"}
        for i, p in enumerate(images)
    ]
    source = tmp_path / "pairs.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = run_in_process(*binding_run(tmp_path, ["text", "vision"]), f"tasks.bind.data.source={source}",
                            "training.max_steps=2")  # fmt: skip
    assert result["steps"] == 2 and metrics(tmp_path / "run")["skipped_samples"] >= 1


@pytest.mark.xdist_group("multiprocess")
@pytest.mark.parametrize("engine", ["ddp", "zero2", "zero3"])
def test_anchor_binding_runs_on_two_processes(tmp_path, engine):
    from ._runs import REPO, free_port, launch

    launch_args = ["--num_processes", "2", "--main_process_port", str(free_port())]
    if engine == "ddp":
        launch_args = ["--multi_gpu", *launch_args]
    else:
        launch_args = ["--config_file", str(REPO / "recipes" / "accelerate" / f"{engine}.yaml"), *launch_args]
    # bind.yaml's five modalities anchored on text, tiny.
    args = binding_run(tmp_path, ["text", "vision", "audio", "graph", "timeseries"], "anchor", "clip",
                       "training.max_steps=3")  # fmt: skip
    launch(launch_args, args, tmp_path / "run.log")
    run = metrics(tmp_path / "run")
    assert run["num_processes"] == 2 and run["steps"] == 3
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in run["history"])
    model = AutoModel.from_pretrained(tmp_path / "run" / "model")
    assert sorted(model.encoders) == ["audio", "graph", "text", "timeseries", "vision"]


BINDING_CONFIGS = ["default", "clip", "siglip", "bind", "lit"]


@pytest.mark.parametrize("name", BINDING_CONFIGS)
def test_binding_recipe_configs_run_and_evaluate(tmp_path, name):
    """Every binding recipe runs for a few steps with tiny towers and ends with its retrieval, zero-shot and
    (for bind) emergent evaluation, each next to random initialisation and chance."""
    import yaml

    from ._runs import REPO

    config = REPO / "recipes" / "configs" / f"{name}.yaml"
    tree = yaml.safe_load(config.read_text())
    task_name, task = next(iter(tree["tasks"].items()))
    modalities, subsets = task["binding"]["modalities"], task["data"]["subsets"]
    overrides = [
        "training.max_steps=2", "training.per_device_batch_size=8", "logging.progress_bar=false",
        "checkpointing.save_every=0", f"tasks.{task_name}.binding.modalities={json.dumps(modalities)}",
        f"tasks.{task_name}.data.subsets={json.dumps(subsets)}", f"tasks.{task_name}.binding.projection_dim=16",
        f"tasks.{task_name}.model.config={json.dumps({m: TOWERS[m] for m in modalities if m not in task['binding'].get('towers', {})})}",
    ]  # fmt: skip
    if "vision" in task["binding"].get("towers", {}):  # lit: a locked vision tower from a saved MAE model
        from mmfm.models import MMFMVisionForMAE
        from tests.model_inputs import objective_config

        mae = tmp_path / "mae"
        MMFMVisionForMAE(objective_config("mae", image_size=16, patch_size=4)).save_pretrained(mae)
        overrides.append(f"tasks.{task_name}.binding.towers.vision={mae}")
    result = run_in_process("--config", str(config), f"output_dir={tmp_path / 'run'}", *overrides)
    assert result["steps"] == 2
    report = result["evaluation"][task_name]
    assert sorted(report["retrieval"]) == sorted(subsets)
    for entry in report["retrieval"].values():
        for direction in [k for k in entry if "_to_" in k]:
            cell = entry[direction]["recall@1"]
            assert 0 <= cell["model"] <= 1 and 0 < cell["chance"] <= 1 and "random_init" in cell
    assert report["zero_shot"], "no zero-shot evaluation"
    if name == "bind":
        assert "spoken_digits_to_digit_images" in report["emergent"]
        assert {"ucr/GunPoint", "ucr/OSULeaf"} <= set(report["zero_shot"])  # classes named by their captions
    if name == "lit":
        model = AutoModel.from_pretrained(tmp_path / "run" / "model")
        mae_weights = MMFMVisionForMAE.from_pretrained(mae).encoder.state_dict()
        for key, value in model.encoders["vision"].state_dict().items():
            assert torch.equal(value, mae_weights[key]), key  # the locked tower did not move


def test_a_text_audio_export_serves_the_zero_shot_audio_pipeline(tmp_path):
    import numpy as np

    run_in_process(*binding_run(tmp_path, ["text", "audio"], "pairs", "clip", "training.max_steps=2"))
    classify = pipeline("zero-shot-audio-classification", model=str(tmp_path / "run" / "model"))
    clip = np.asarray(load_demo_dataset("audio", "spoken_digits")["test"][0]["audio"], dtype=np.float32)
    answer = classify(clip, candidate_labels=["zero", "one", "two"], hypothesis_template="{}")
    assert sorted(a["label"] for a in answer) == ["one", "two", "zero"]
    assert sum(a["score"] for a in answer) == pytest.approx(1.0, abs=1e-5)


def test_a_binding_export_loads_and_runs_without_mmfm(tmp_path):
    import os
    import subprocess
    import sys

    from mmfm.data.paired import load_paired_demo
    from mmfm.processing import MMFMProcessor

    from ._runs import REPO

    run_in_process(*binding_run(tmp_path, ["text", "vision"], "pairs", "siglip", "training.max_steps=2"))
    folder = tmp_path / "run" / "model"
    rows = load_paired_demo("digit_captions", "test").select(range(4))
    processor = MMFMProcessor.from_pretrained(folder)
    inputs = {
        "text": dict(processor["text"](list(rows["text"]), padding=True, return_tensors="pt")),
        "vision": dict(processor["vision"](list(rows["image"]), return_tensors="pt")),
    }
    (tmp_path / "export").symlink_to(folder)
    torch.save(inputs, tmp_path / "export_inputs.pt")
    model = AutoModel.from_pretrained(folder).eval()
    with torch.no_grad():
        expected = model(**inputs).embeddings
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf_home"), "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}
    script = REPO / "tests" / "models" / "_load_without_mmfm.py"
    subprocess.run([sys.executable, str(script), str(tmp_path), "export"], cwd=tmp_path, env=env, check=True,
                   timeout=300)  # fmt: skip
    remote = torch.load(tmp_path / "remote_outputs.pt")["export"]
    assert remote["module"].startswith("transformers_modules.")
    for modality in ("text", "vision"):
        torch.testing.assert_close(remote["embeddings"][modality], expected[modality], rtol=0, atol=0)


def test_all_pairs_mode_trains_every_pair_its_sources_carry(tmp_path):
    subsets = ["digit_captions", "spoken_digit_transcripts", "spoken_digit_images"]
    result = run_in_process(*binding_run(tmp_path, ["text", "vision", "audio"], "all_pairs", "clip",
                                         "training.max_steps=3", subsets=subsets))  # fmt: skip
    assert result["steps"] == 3
    state = json.loads(
        (tmp_path / "run" / "checkpoints" / "step_00000003" / "trainer_state_0.json").read_text()
    )
    assert sorted(state["streams"]["bind"]["streams"]) == ["text+audio", "text+vision", "vision+audio"]
    emergent = result["evaluation"]["bind"]["emergent"]
    assert "spoken_digits_to_digit_images" in emergent


def test_a_briefly_trained_model_names_held_out_digits_through_the_pipeline(tmp_path):
    """After 400 steps on digit captions, the zero-shot pipeline names many of 80 held-out digits right
    (chance: 1 in 10)."""
    run = binding_run(tmp_path, ["text", "vision"], "pairs", "clip", "training.max_steps=400",
                      "training.per_device_batch_size=64", "training.learning_rate=2e-3",
                      "training.warmup_ratio=0.05", "tasks.bind.evaluation=[]", subsets=["digit_captions"])  # fmt: skip
    run_in_process(*run, "logging.log_every=50")
    classify = pipeline("zero-shot-image-classification", model=str(tmp_path / "run" / "model"))
    words = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    test = load_demo_dataset("vision", "digits")["test"].select(range(80))
    right = sum(
        classify(row["image"], candidate_labels=words, hypothesis_template="a handwritten digit {}")[0][
            "label"
        ]
        == words[row["label"]]
        for row in test
    )
    # 51 of 80 alone; 6 of 20 once in a full parallel run (the same seed trains a weaker model after other
    # tests in the process). Chance is 8 of 80, and 20+ by chance has p < 1e-4.
    assert right >= 20, f"{right} of 80 held-out digits named right"


def test_the_binding_evaluation_runs_standalone_on_an_export(tmp_path, capsys):
    from mmfm.evaluation.__main__ import main

    run_in_process(*binding_run(tmp_path, ["text", "vision"], "pairs", "clip", "training.max_steps=2",
                                "tasks.bind.evaluation=[]"))  # fmt: skip
    report_path = tmp_path / "report.json"
    main([str(tmp_path / "run" / "model"), "--subsets", "digit_captions", "--output", str(report_path)])
    report = json.loads(report_path.read_text())
    assert report["zero_shot"]["digit_captions"]["accuracy"]["chance"] == pytest.approx(0.1)
    assert "text_to_vision" in report["retrieval"]["digit_captions"]
    assert "zero_shot digit_captions: accuracy" in capsys.readouterr().out
    with pytest.raises(ValueError, match="Unknown paired demo subset"):
        main([str(tmp_path / "run" / "model"), "--subsets", "photos_of_cats"])
