"""Bad rows in `mmfm.data`: the tolerant JSON-lines reader (map-style and streamed read the same rows and carry
the same counts; JSON array and one-object files still load), packing passes the carried counts on, the
collator names each bad row (dataset index, or place in the stream) with its column, value and error, and
images and audio inside Parquet files are decoded by the row adapter, so a corrupt one is one bad row."""

import io
import json
import wave
from pathlib import Path

import datasets
import numpy as np
import pytest

import mmfm
from mmfm.data import BatchStream, RowCollator, first_row, load_rows, pack_texts
from mmfm.data.bad_rows import BadRowLimits, short_repr
from mmfm.modalities import get_modality
from mmfm.modalities.audio import open_clip
from mmfm.processing import MMFMProcessor
from tests.training._runs import write_images

WHERE = "tasks.t.data"
TEXT, VISION, AUDIO, GRAPH = (get_modality(m) for m in ("text", "vision", "audio", "graph"))
BAD = [b'{"text": "cut\n', b'{"text": "caf\xe9"}\n', b"42\n"]


@pytest.fixture(autouse=True)
def datasets_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf_datasets_cache")


def write_lines(path: Path, texts: list[str], bad: dict[int, bytes]) -> Path:
    lines = [json.dumps({"text": t}).encode() + b"\n" for t in texts]
    for position in sorted(bad, reverse=True):
        lines.insert(position, bad[position])
    path.write_bytes(b"".join(lines))
    return path


@pytest.mark.parametrize("streaming", [False, True])
def test_bad_lines_ride_on_a_neighbour_and_the_rest_reads_as_before(tmp_path, streaming):
    path = write_lines(
        tmp_path / "rows.jsonl", [f"text {i}" for i in range(10)], {0: BAD[0], 4: BAD[1], 10: BAD[2]}
    )
    rows = load_rows(str(path), TEXT, WHERE, streaming=streaming)
    assert first_row(rows) == {"text": "text 0"}
    read = list(rows)
    assert [row["text"] for row in read] == [f"text {i}" for i in range(10)]
    assert [row["num_skipped"] for row in read] == [1, 0, 0, 1, 0, 0, 0, 0, 0, 1]
    assert read[3]["skipped_rows"].startswith(
        f'{path}:6, value \'{{"text": "caf\\\\xe9"}}\\n\': not UTF-8 text'
    )
    assert read[9]["skipped_rows"] == f"{path}:13, value '42\\n': a JSON int, not an object"


@pytest.mark.parametrize("streaming", [False, True])
@pytest.mark.parametrize("content", [["a", "b"], [{"text": "a"}, {"text": "b"}]])
def test_a_json_array_file_still_loads(tmp_path, streaming, content):
    (tmp_path / "rows.json").write_text(json.dumps(content))
    assert [
        row["text"] for row in load_rows(str(tmp_path / "rows.json"), TEXT, WHERE, streaming=streaming)
    ] == [
        "a",
        "b",
    ]


@pytest.mark.parametrize("streaming", [False, True])
def test_clean_files_and_a_dirty_one_load_together(tmp_path, streaming):
    write_lines(tmp_path / "a.jsonl", ["a0", "a1"], {})
    write_lines(tmp_path / "b.jsonl", ["b0", "b1"], {1: BAD[2]})
    rows = list(load_rows(str(tmp_path), TEXT, WHERE, streaming=streaming))
    assert sorted(row["text"] for row in rows) == ["a0", "a1", "b0", "b1"]
    assert sum(row["num_skipped"] for row in rows) == 1


def test_image_paths_in_two_folders_one_with_a_bad_line(tmp_path):
    for name, bad in (("one", {}), ("two", {1: b"{oops\n"})):
        written = write_images(tmp_path / name / "pics", per_class=2)
        lines = [json.dumps({"image": str(p.relative_to(tmp_path / name))}).encode() + b"\n" for p in written]
        for position, line in bad.items():
            lines.insert(position, line)
        (tmp_path / name / "rows.jsonl").write_bytes(b"".join(lines))
    rows = load_rows(str(tmp_path), VISION, WHERE)
    assert len(rows) == 8 and sum(rows["num_skipped"]) == 1
    assert all(Path(path).is_file() for path in rows["image"])


def test_the_caps_apply_at_load(tmp_path):
    path = write_lines(tmp_path / "rows.jsonl", [f"text {i}" for i in range(10)], {3: BAD[2] * 3, 8: BAD[0]})
    with pytest.raises(
        ValueError,
        match=r"3 bad lines in a row were skipped, more than `tasks\.t\.data\.max_bad_rows_in_a_row` = 2",
    ):
        load_rows(str(path), TEXT, WHERE, limits=BadRowLimits(WHERE, max_in_a_row=2))
    with pytest.raises(
        ValueError, match=r"4 bad lines were skipped, more than `tasks\.t\.data\.max_bad_rows` = 3"
    ):
        load_rows(str(path), TEXT, WHERE, limits=BadRowLimits(WHERE, max_total=3))
    assert (
        len(load_rows(str(path), TEXT, WHERE, limits=BadRowLimits(WHERE, max_in_a_row=3, max_total=4))) == 10
    )


def word_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = "a sentence with few words, number".replace(",", " ,").split()
    backend = Tokenizer(models.WordLevel({w: i for i, w in enumerate(["[UNK]", *words])}, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]")


@pytest.mark.parametrize("streaming", [False, True])
def test_packing_carries_the_counts_of_bad_lines_and_bad_texts(tmp_path, streaming):
    texts = [f"a sentence with a few words, number {i}" for i in range(40)] + ["  "]
    path = write_lines(tmp_path / "rows.jsonl", texts, {5: BAD[0], 20: BAD[1]})
    rows = load_rows(str(path), TEXT, WHERE, streaming=streaming)
    blocks = list(pack_texts(rows, word_tokenizer(), "text", 16, "skip", WHERE))
    assert sum(block["num_skipped"] for block in blocks) == 3
    described = [block["skipped_rows"] for block in blocks if block["skipped_rows"]]
    assert len(described) == 1 and described[0].startswith(f"{path}:6")


def test_short_repr_cuts_large_values():
    assert short_repr({"bytes": b"\x89PNG" + bytes(10_000), "path": None}).endswith(
        "...' (10004 bytes), 'path': None}"
    )
    assert len(short_repr("x" * 10_000)) < 80
    assert short_repr(np.zeros((3, 4), dtype=np.float32)) == "array(shape=(3, 4), dtype=float32)"


# ---------------------------------------------------------------------------------------------- collator


def graph(num_nodes: int, edges: list[tuple[int, int]]) -> dict:
    return {
        "num_nodes": num_nodes,
        "edge_index": [[s for s, _ in edges], [t for _, t in edges]],
        "node_features": [[float(n), 0.0, 1.0] for n in range(num_nodes)],
    }


@pytest.mark.parametrize("streaming", [False, True])
def test_the_collator_names_bad_rows_by_dataset_index_or_stream_position(streaming):
    rows = [graph(3, [(0, 1)]) for _ in range(8)]
    rows[5] = graph(3, [(0, 7)])  # an edge to a node that does not exist
    data = datasets.Dataset.from_list(rows)
    data = data.to_iterable_dataset() if streaming else data
    processor = MMFMProcessor.from_model_config(mmfm.MMFMGraphConfig(node_feature_size=3))
    collate = RowCollator(GRAPH, processor, {}, "tasks.t")
    stream = BatchStream(data, collate, 4, 0, 1, 0, 0, 1, WHERE)  # buffer 1: the stream keeps its order
    batches = [next(stream), next(stream)]
    bad = [b for batch in batches for b in batch["bad_rows"]]
    assert [batch["num_skipped"] for batch in batches] == [0, 1] and len(bad) == 1
    where = "row 5 of this process's stream in epoch 0" if streaming else "dataset row 5"
    assert str(bad[0]).startswith(f"{where}, column ['num_nodes', 'edge_index', 'node_features'], value {{")


# ---------------------------------------------------------------------------------------------- files in Parquet


def wav_bytes(samples: np.ndarray, rate: int = 16000) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes((samples * 32767).astype("<i2").tobytes())
    return buffer.getvalue()


def test_open_clip_reads_pcm_wav_and_names_what_it_cannot():
    tone = np.sin(np.linspace(0, 100, 1600)).astype(np.float32)
    clip, rate = open_clip({"bytes": wav_bytes(tone), "path": None})
    assert rate == 16000 and np.abs(clip - tone).max() < 1e-3
    with pytest.raises(ValueError, match="cannot decode audio 'x.wav'"):
        open_clip({"bytes": b"RIFF but not really", "path": "x.wav"})


def test_corrupt_audio_and_images_inside_parquet_are_bad_rows(tmp_path):
    tone = np.sin(np.linspace(0, 400, 16000)).astype(np.float32)
    cells = [{"bytes": wav_bytes(tone) if i != 2 else b"junk", "path": None} for i in range(4)]
    datasets.Dataset.from_dict({"audio": cells}).cast_column("audio", datasets.Audio()).to_parquet(
        str(tmp_path / "audio.parquet")
    )
    rows = load_rows(str(tmp_path / "audio.parquet"), AUDIO, WHERE)
    assert rows.features["audio"].decode is False
    processor = MMFMProcessor.from_model_config(mmfm.MMFMAudioConfig())
    batch = RowCollator(AUDIO, processor, {}, "tasks.t")(
        [{**row, "__mmfm_row_index__": i} for i, row in enumerate(rows)]
    )
    assert (batch["num_rows"], batch["num_skipped"]) == (3, 1)
    assert str(batch["bad_rows"][0]).startswith(
        "dataset row 2, column 'audio', value {'bytes': b'junk', 'path': None}: "
    )

    images = write_images(tmp_path / "pics", per_class=2)
    cells = [{"bytes": p.read_bytes() if i != 1 else b"junk", "path": None} for i, p in enumerate(images)]
    datasets.Dataset.from_dict({"image": cells}).cast_column("image", datasets.Image()).to_parquet(
        str(tmp_path / "images.parquet")
    )
    rows = load_rows(str(tmp_path / "images.parquet"), VISION, WHERE)
    processor = MMFMProcessor.from_model_config(mmfm.MMFMVisionConfig(image_size=16, patch_size=4))
    batch = RowCollator(VISION, processor, {}, "tasks.t")(list(rows))
    assert (batch["num_rows"], batch["num_skipped"]) == (3, 1)
    assert "cannot read image of 4 bytes" in str(batch["bad_rows"][0])
