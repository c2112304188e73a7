"""Faults and bad input: non-finite losses are skipped and counted (and stop the run past a limit), out
of memory says how to fit, and bad data or a foreign output folder are refused before training starts;
corrupt rows are skipped and counted, or stop the run when asked to."""

import functools
import json

import pytest
import torch

from mmfm.models import MMFMVisionForMAE
from mmfm.training import NonFiniteLossError

from ._runs import TINY, mae_run, run_in_process, write_jsonl, write_run_config


@pytest.fixture
def poisoned_calls(monkeypatch):
    """Makes the MAE loss NaN on the forward calls whose numbers (1-based) are in the returned set."""
    calls, poisoned, forward = [0], set(), MMFMVisionForMAE.forward

    @functools.wraps(forward)  # keeps the signature, from which the trainer picks the model's inputs
    def forward_with_fault(self, *args, **kwargs):
        outputs = forward(self, *args, **kwargs)
        calls[0] += 1
        if calls[0] in poisoned:
            outputs.loss = outputs.loss * float("nan")
        return outputs

    monkeypatch.setattr(MMFMVisionForMAE, "forward", forward_with_fault)
    return poisoned


def test_nonfinite_losses_skip_their_steps_and_are_counted(tmp_path, poisoned_calls):
    poisoned_calls.update({3, 4})
    result = run_in_process(*mae_run(tmp_path, "training.max_steps=6"))
    assert result["nonfinite_steps"] == 2 and result["steps"] == 6
    assert [r["nonfinite_steps"] for r in result["history"]] == [0, 0, 1, 2, 2, 2]
    model = MMFMVisionForMAE.from_pretrained(tmp_path / "run" / "model")
    assert all(torch.isfinite(p).all() for p in model.parameters())  # the NaN gradients never reached them


def test_too_many_nonfinite_losses_stop_the_run_with_advice(tmp_path, poisoned_calls):
    poisoned_calls.update({2, 3, 4})
    with pytest.raises(NonFiniteLossError) as raised:
        run_in_process(*mae_run(tmp_path, "training.max_steps=6", "training.max_nonfinite_steps=2"))
    message = str(raised.value)
    assert "3 steps had a NaN or infinite loss" in message and "training.learning_rate" in message


def test_out_of_memory_suggests_a_smaller_micro_batch(tmp_path, monkeypatch):
    @functools.wraps(MMFMVisionForMAE.forward)
    def forward_out_of_memory(self, *args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(MMFMVisionForMAE, "forward", forward_out_of_memory)
    with pytest.raises(RuntimeError) as raised:
        run_in_process(*mae_run(tmp_path, "training.max_steps=2"))
    message = str(raised.value)
    assert "Out of memory" in message
    assert (
        "training.per_device_batch_size=4" in message and "training.gradient_accumulation_steps=2" in message
    )


def test_an_output_dir_with_a_different_run_is_refused(tmp_path):
    run_in_process(*mae_run(tmp_path, "training.max_steps=2"))
    with pytest.raises(ValueError) as raised:
        run_in_process(*mae_run(tmp_path, "training.max_steps=2", "training.learning_rate=0.1"))
    assert "holds a different run" in str(raised.value) and "training.learning_rate" in str(raised.value)
    again = run_in_process(*mae_run(tmp_path, "training.max_steps=3"))  # the same run, longer: continues
    assert again["resumed_from"].endswith("step_00000002") and again["steps"] == 3
    fresh = run_in_process(*mae_run(tmp_path, "training.max_steps=2", "training.learning_rate=0.1",
                                    "overwrite_output_dir=true"))  # fmt: skip
    assert fresh["resumed_from"] is None


def test_a_folder_that_holds_other_files_is_refused(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="not empty and was not created by mmfm"):
        run_in_process(*mae_run(tmp_path, "training.max_steps=2"))


@pytest.mark.parametrize(
    "rows, error, words",
    [
        (None, FileNotFoundError, ["tasks.text.data.source", "matches no data file"]),
        ([], ValueError, ["holds no rows"]),
        ([{"content": "a text"}], ValueError, ["no column(s) ['text']", "tasks.text.data.text_column"]),
    ],
)
def test_bad_data_is_refused_before_training(tmp_path, rows, error, words):
    source = tmp_path / "texts.jsonl"
    if rows is not None:
        write_jsonl(source, rows)
    config = tmp_path / "text.yaml"
    write_run_config(config, {"tasks": {"text": {"objective": "mlm", "data": {"source": str(source)}}}})
    with pytest.raises(error) as raised:
        run_in_process("--config", str(config), f"output_dir={tmp_path / 'run'}", "training.max_steps=2")
    for word in words:
        assert word in str(raised.value)
    assert not (tmp_path / "run" / "checkpoints").exists()


def _graphs_with_one_corrupt(tmp_path):
    graphs = []
    for i in range(24):
        edges = [[0, 1, 2], [1, 2, 0]]
        if i == 5:
            edges = [[0, 1], [1, 7]]  # node 7 of a 3-node graph
        graphs.append({"num_nodes": 3, "edge_index": edges, "node_features": [[1.0, 0.0]] * 3})
    source = write_jsonl(tmp_path / "graphs.jsonl", graphs)
    config = tmp_path / "graph.yaml"
    # No end-of-run evaluation: GraphMAE's default probes read the demo molecules, whose node features
    # are wider than these graphs'.
    write_run_config(config, {"tasks": {"graph": {"objective": "graphmae", "data": {"source": str(source)},
                                                  "evaluation": []}}})  # fmt: skip
    return ["--config", str(config), f"output_dir={tmp_path / 'run'}", "training.max_steps=6",
            "training.per_device_batch_size=4", "logging.log_every=1", "logging.progress_bar=false",
            "logging.report_to=[]"] + [f"tasks.graph.model.config.{k}={v}" for k, v in TINY.items()]  # fmt: skip


def test_a_corrupt_row_is_skipped_and_counted(tmp_path):
    result = run_in_process(*_graphs_with_one_corrupt(tmp_path))
    assert result["skipped_samples"] == 1  # 6 steps x 4 rows = one epoch: the bad row came up once
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["skipped_samples"] == 1
    assert sum(r["samples_per_s"] > 0 for r in result["history"]) == 6


def test_a_corrupt_row_stops_the_run_when_asked(tmp_path):
    with pytest.raises(ValueError, match="on_bad_sample=skip"):
        run_in_process(*_graphs_with_one_corrupt(tmp_path), "tasks.graph.data.on_bad_sample=raise")
    assert not (tmp_path / "run" / "metrics.json").exists()
