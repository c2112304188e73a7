"""Continued pretraining: a run starts from a saved model (a local export or a Hub id read from the local Hugging
Face cache, offline), with `model.config` checked against it, replays a share of the original data, and
reports the probes of the starting and the continued model side by side (forgetting)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from datasets import Dataset
from transformers import AutoModel

from mmfm.data import BatchStream
from mmfm.data.replay import ReplayBatchSampler, batches_per_epoch
from mmfm.evaluation import evaluate_encoder
from mmfm.evaluation.forgetting import forgetting_report, markdown_table
from mmfm.objectives import get_objective
from mmfm.processing import MMFMProcessor
from mmfm.recipes import CONFIGS
from mmfm.training import pretrained
from mmfm.training.config import load_config
from mmfm.training.tasks import build_model, build_model_config, load_tokenizer

from ._runs import TINY, max_difference, run_in_process, tiny_overrides, weights

MAE_YAML = CONFIGS / "mae.yaml"
CONTINUE = CONFIGS / "continue"
QUICK = ["training.max_steps=2", "training.per_device_batch_size=8", "logging.log_every=1",
         "checkpointing.save_every=0", "logging.progress_bar=false", "logging.report_to=[]"]  # fmt: skip


@pytest.fixture(autouse=True)
def _fresh_resolutions():
    pretrained.forget_resolutions()
    yield
    pretrained.forget_resolutions()


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """The export of a short `mae.yaml` run on digits only (tiny widths): the model runs continue from."""
    root = tmp_path_factory.mktemp("base")
    run_in_process("--config", str(MAE_YAML), f"output_dir={root}", *tiny_overrides(MAE_YAML),
                   "tasks.mae.data.subsets=[digits]", "tasks.mae.evaluation=[]", "checkpointing.save_every=0",
                   "logging.report_to=[]")  # fmt: skip
    return root / "model"


def _continue(tmp_path: Path, base: Path, *extra: str) -> list[str]:
    """Recipe arguments: `continue/vision.yaml` from `base`, on shapes with digits replayed."""
    return ["--config", str(CONTINUE / "vision.yaml"), f"output_dir={tmp_path / 'run'}",
            f"tasks.mae.model.init_from={base}", *QUICK, *extra]  # fmt: skip


# ---------------------------------------------------------------------------------------------- init_from


def test_the_readme_example_continues_mae_yaml_from_its_own_export(base, tmp_path):
    """`--config mae.yaml tasks.mae.model.init_from=...`: mae.yaml's `model.config` and `objective_config` agree
    with the export's saved values, so the config runs as written; the model starts from the export."""
    args = ["--config", str(MAE_YAML), f"output_dir={tmp_path / 'run'}", *tiny_overrides(MAE_YAML),
            "tasks.mae.evaluation=[]", f"tasks.mae.model.init_from={base}", "logging.report_to=[]"]  # fmt: skip
    config = load_config(args[1], args[2:])
    task = config.tasks["mae"]
    start = build_model(task, "tasks.mae", None, "sdpa")
    assert max_difference({k: v for k, v in start.state_dict().items()}, weights(base)) == 0
    result = run_in_process(*args)
    assert result["steps"] == 3 and result["init_from"]["mae"]["folder"] == str(base)
    assert result["init_from"]["mae"]["repo_id"] is None
    assert max_difference(weights(tmp_path / "run" / "model"), weights(base)) > 0  # it trained
    assert yaml.safe_load((tmp_path / "run" / "run_config.yaml").read_text())["tasks"]["mae"]["model"][
        "init_from"
    ] == str(base)


def test_model_config_agreeing_is_fine_differing_is_refused_naming_both_dropout_applies(base):
    def task(*overrides: str):
        args = [f"tasks.mae.model.init_from={base}", *overrides]
        return load_config(CONTINUE / "vision.yaml", args).tasks["mae"]

    agreeing = task("tasks.mae.model.config={image_size: 32, hidden_size: 32}",
                    "tasks.mae.objective_config.decoder_hidden_size=32")  # fmt: skip
    assert build_model(agreeing, "tasks.mae", None, "sdpa").config.hidden_size == 32
    with pytest.raises(ValueError) as raised:
        task("tasks.mae.model.config.hidden_size=64")
    message = str(raised.value)
    assert "`tasks.mae.model.config.hidden_size` = 64" in message and "hidden_size=32" in message
    assert str(base) in message
    with pytest.raises(
        ValueError, match=r"`tasks\.mae\.objective_config\.mask_ratio` = 0\.5.*mask_ratio=0\.75"
    ):
        task("tasks.mae.objective_config.mask_ratio=0.5")
    dropout = build_model(task("tasks.mae.model.config.hidden_dropout_prob=0.1"), "tasks.mae", None, "sdpa")
    assert dropout.config.hidden_dropout_prob == 0.1 and dropout.config.hidden_size == 32
    assert max_difference(dropout.state_dict(), weights(base)) == 0  # the weights are the export's
    with pytest.raises(ValueError, match="hidden_sise"):  # unknown keys are refused as for a new model
        task("tasks.mae.model.config.hidden_sise=1")


def _hub_cache(root: Path, repo_id: str, folder: Path) -> tuple[Path, str]:
    """The layout `huggingface_hub` writes for a downloaded model (`models--user--name/snapshots/<commit>/`, blobs
    linked from the snapshot, `refs/main`), with `folder`'s files; the cache root and the commit."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = root / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / commit
    (repo / "blobs").mkdir(parents=True)
    snapshot.mkdir(parents=True)
    for i, path in enumerate(sorted(p for p in folder.iterdir() if p.is_file())):
        blob = repo / "blobs" / f"{i:040x}"
        shutil.copyfile(path, blob)
        (snapshot / path.name).symlink_to(Path("..", "..", "blobs", blob.name))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    return root, commit


@pytest.fixture
def offline_cache(tmp_path, monkeypatch, base):
    """A Hub cache holding `tester/tiny-mae` (the base export), offline, as HF_HUB_CACHE + HF_HUB_OFFLINE=1 set it."""
    from huggingface_hub import constants

    cache, commit = _hub_cache(tmp_path / "hub", "tester/tiny-mae", base)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return commit


def test_a_hub_id_in_the_local_cache_continues_offline(offline_cache, base, tmp_path):
    source = pretrained.resolve_model_source("tester/tiny-mae", "tasks.mae.model.init_from")
    assert source.repo_id == "tester/tiny-mae" and source.commit == offline_cache
    assert Path(source.folder).parts[-2:] == ("snapshots", offline_cache)
    pretrained.forget_resolutions()
    result = run_in_process(*_continue(tmp_path, "tester/tiny-mae", "tasks.mae.evaluation=[]"))
    assert result["init_from"]["mae"] == {
        "value": "tester/tiny-mae", "folder": source.folder, "repo_id": "tester/tiny-mae", "revision": None,
        "commit": offline_cache,
    }  # fmt: skip
    # run_config.yaml keeps what the user wrote (a model card names it as the base model).
    saved = yaml.safe_load((tmp_path / "run" / "run_config.yaml").read_text())
    assert saved["tasks"]["mae"]["model"]["init_from"] == "tester/tiny-mae"
    # A pinned revision resolves to the same snapshot.
    pinned = pretrained.resolve_model_source(f"tester/tiny-mae@{offline_cache}", "f")
    assert pinned.folder == source.folder and pinned.revision == offline_cache


def test_an_uncached_hub_id_offline_is_refused_before_training_naming_the_fix(offline_cache, tmp_path):
    with pytest.raises(FileNotFoundError) as raised:
        run_in_process(*_continue(tmp_path, "tester/not-downloaded"))
    message = str(raised.value)
    assert "`tasks.mae.model.init_from` = 'tester/not-downloaded'" in message
    assert "HF_HUB_OFFLINE=1" in message and "hf download tester/not-downloaded" in message
    assert "local folder" in message
    assert not (tmp_path / "run" / "checkpoints").exists()
    with pytest.raises(FileNotFoundError, match="neither a folder nor a Hugging Face Hub id"):
        load_config(CONTINUE / "vision.yaml", ["tasks.mae.model.init_from=no/such/folder"])


# ---------------------------------------------------------------------------------------------- replay


def _rows(count: int, source: int) -> Dataset:
    return Dataset.from_dict({"x": list(range(count)), "source": [source] * count})


def _stream(new, replay, share=0.25, seed=0, rank=0, world_size=1, batch_size=8, streaming=False):
    if streaming:
        new, replay = new.to_iterable_dataset(num_shards=2), replay.to_iterable_dataset()
    return BatchStream(new, lambda rows: rows, batch_size, rank, world_size, seed, 0, 64, "tasks.t.data",
                       replay=replay, replay_share=share)  # fmt: skip


def _take(stream, count: int) -> list[list[tuple[int, int]]]:
    return [[(row["source"], row["x"]) for row in next(stream)] for _ in range(count)]


@pytest.mark.parametrize("streaming", [False, True])
def test_replay_share_matches_the_config_and_is_seeded(streaming):
    new, replay = _rows(400, 0), _rows(60, 1)
    batches = _take(_stream(new, replay, 0.25, streaming=streaming), 100)
    share = sum(source for batch in batches for source, _ in batch) / sum(len(b) for b in batches)
    # Map-style: exact to a row over the batches; streams: each row drawn with probability 0.25.
    assert share == pytest.approx(0.25, abs=0.002 if not streaming else 0.04)
    assert batches == _take(_stream(new, replay, 0.25, streaming=streaming), 100)  # same seed, same batches
    assert batches != _take(_stream(new, replay, 0.25, seed=1, streaming=streaming), 100)
    if not streaming:  # every replay row comes back, not one fixed sample of them
        assert {x for batch in batches for source, x in batch if source == 1} == set(range(60))
        per_batch = [sum(s for s, _ in batch) for batch in batches]
        assert set(per_batch) <= {2, 3}  # 0.25 x 8 rows, spread over batches


@pytest.mark.parametrize("streaming", [False, True])
def test_replay_resumes_exactly_from_a_stream_position(streaming):
    new, replay = _rows(100, 0), _rows(30, 1)
    whole = _take(_stream(new, replay, 0.3, streaming=streaming), 40)  # several epochs of the new rows
    first = _stream(new, replay, 0.3, streaming=streaming)
    _take(first, 17)
    again = _stream(new, replay, 0.3, streaming=streaming)
    again.load_state_dict(first.state_dict())
    assert _take(again, 23) == whole[17:]


def test_two_processes_together_see_the_rows_of_one_with_their_batch():
    new, replay = _rows(200, 0), _rows(40, 1)
    one = _take(_stream(new, replay, 0.2, batch_size=8), 30)
    ranks = [_take(_stream(new, replay, 0.2, batch_size=4, rank=r, world_size=2), 30) for r in (0, 1)]
    assert [sorted(a + b) for a, b in zip(*ranks)] == [sorted(batch) for batch in one]


def test_replay_sampler_epoch_covers_the_new_rows_once():
    sampler = ReplayBatchSampler(100, 7, 8, 0, 1, seed=0, epoch=0, start=0, share=0.3)
    assert len(sampler) == batches_per_epoch(100, 0.3, 8)
    indices = [i for batch in sampler for i in batch]
    new = [i for i in indices if i < 100]
    assert len(new) == len(set(new)) and len(new) > 100 - 8  # each new row at most once, the tail dropped


def test_replay_settings_are_checked():
    with pytest.raises(ValueError, match=r"`tasks\.mae\.data\.replay\.share` must be in \[0, 1\)"):
        load_config(MAE_YAML, ["tasks.mae.data.replay.share=1"])
    with pytest.raises(ValueError, match=r"`tasks\.mae\.data\.replay\.subsets` is empty"):
        load_config(MAE_YAML, ["tasks.mae.data.replay.share=0.2"])


# ---------------------------------------------------------------------------------------------- configs and runs


def _saved_model(objective_name: str, folder: Path, subset: str) -> Path:
    """A new tiny model of the objective, saved as a run exports it (with its tokenizer for text)."""
    from mmfm.data.demo import load_demo_dataset
    from mmfm.training.config import TaskSection, build_section

    objective = get_objective(objective_name)
    task = build_section(TaskSection, {"objective": objective_name, "model": {"config": dict(TINY)}}, "t")
    tokenizer = load_tokenizer(task, "t") if objective.spec.tokenized else None
    first = load_demo_dataset(objective.modality, subset)["train"][0]
    config = build_model_config(task, "t", tokenizer, objective.spec.fields_from_data(first))
    objective.model_class(config).save_pretrained(folder)
    if tokenizer is not None:
        tokenizer.save_pretrained(folder)
    return folder


@pytest.mark.parametrize("modality", ["text", "vision", "audio", "graph", "timeseries"])
def test_every_continued_pretraining_config_parses_with_an_export(modality, tmp_path):
    path = CONTINUE / f"{modality}.yaml"
    tree = yaml.safe_load(path.read_text())
    ((name, section),) = tree["tasks"].items()
    assert section["data"]["replay"]["share"] > 0
    folder = _saved_model(section["objective"], tmp_path / "start", section["data"]["replay"]["subsets"][0])
    config = load_config(path, [f"tasks.{name}.model.init_from={folder}"])
    task = config.tasks[name]
    assert task.data.replay.subsets and not set(task.data.subsets) & set(task.data.replay.subsets)
    assert {"new", "original"} >= {
        ("new" if e.subset in task.data.subsets else "original") for e in task.evaluations()
    }


def test_continued_run_with_replay_reports_forgetting_from_both_models(base, tmp_path):
    """The end-of-run probes of the starting model (before) and of the export (after), by domain."""
    probes = "tasks.mae.evaluation=[{subset: digits, probes: [knn]}, {subset: shapes, probes: [knn]}]"
    result = run_in_process(*_continue(tmp_path, base, probes))
    report = result["forgetting"]["mae"]
    assert [(r["domain"], r["evaluation"], r["probe"]) for r in report["rows"]] == [
        ("original", "digits/label", "knn"), ("new", "shapes/label", "knn"),
    ]  # fmt: skip
    assert set(report["mean_change"]) == {"original", "new"}
    # `after` is the run's evaluation of its export; `before` the same probe of the starting model.
    for row in report["rows"]:
        assert row["after"] == result["evaluation"]["mae"][row["evaluation"]]["knn"]["accuracy"]
        assert row["change"] == pytest.approx(row["after"] - row["before"])
    from mmfm.data import load_labelled_splits
    from mmfm.modalities import get_modality

    train, test = load_labelled_splits("demo", get_modality("vision"), "e", "label", "digits", seed=0)
    direct = evaluate_encoder(AutoModel.from_pretrained(base), MMFMProcessor.from_pretrained(base), "vision",
                              train, test, tasks=["knn"], progress=False)  # fmt: skip
    assert report["rows"][0]["before"] == direct["knn"]["accuracy"]
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["forgetting"] == result["forgetting"]
    table = (tmp_path / "run" / "forgetting.md").read_text()
    assert "| original | digits/label | knn | accuracy |" in table and "| new | shapes/label |" in table


def test_a_continued_run_with_replay_resumes_exactly(base, tmp_path):
    args = _continue(
        tmp_path, base, "tasks.mae.evaluation=[]", "training.max_steps=6", "checkpointing.save_every=3"
    )
    whole = run_in_process(*args)
    run = tmp_path / "run"
    reference = weights(run / "model")
    shutil.rmtree(run / "checkpoints" / "step_00000006")
    shutil.rmtree(run / "model")
    resumed = run_in_process(*args)
    assert resumed["resumed_from"].endswith("step_00000003") and whole["steps"] == 6
    assert max_difference(weights(run / "model"), reference) == 0


def test_forgetting_report_structure():
    before = {"digits/label": {"knn": {"accuracy": 0.9}}, "molecules/tpsa": {"ridge": {"r2": 0.5}}}
    after = {"digits/label": {"knn": {"accuracy": 0.7}}, "molecules/tpsa": {"ridge": {"r2": 0.6}}}
    report = forgetting_report(before, after, {"molecules/tpsa": "new"})
    assert report["rows"][0] == {"evaluation": "digits/label", "domain": "original", "probe": "knn",
                                 "metric": "accuracy", "before": 0.9, "after": 0.7,
                                 "change": pytest.approx(-0.2)}  # fmt: skip
    assert report["rows"][1]["metric"] == "r2" and report["mean_change"]["new"] == pytest.approx(0.1)
    assert "| original | digits/label | knn | accuracy | 0.900 | 0.700 | -0.200 |" in markdown_table(report)
    with pytest.raises(ValueError, match="no 'knn' result"):
        forgetting_report({}, after, {})
