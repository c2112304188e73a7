"""Tiny text/vision/audio `MMFMModel`s with the demo tokenizer, and the small test demo corpus they read.

The corpus is the one the training tests build (`.cache/mmfm-tests`, at most 400 rows per subset, cached per
checkout); only the subsets these tests read are built here when missing, under the same lock.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import torch
from filelock import FileLock

import mmfm
from mmfm.data.demo import build_demo_corpus, load_demo_dataset, load_demo_tokenizer
from mmfm.processing import MMFMProcessor

TEST_HOME = Path(__file__).resolve().parents[2] / ".cache" / "mmfm-tests"
SUBSETS = ["text/corpus", "vision/shapes", "vision/digits", "audio/spoken_digits"]


@cache
def demo_root() -> Path:
    """The test demo corpus root, with the subsets of `SUBSETS` (and the tokenizer) built."""
    TEST_HOME.mkdir(parents=True, exist_ok=True)
    with FileLock(str(TEST_HOME / "build.lock")):
        build_demo_corpus(TEST_HOME / "demo", subsets=SUBSETS, max_samples=400, progress=False)
    return TEST_HOME / "demo"


def demo_split(modality: str, subset: str, split: str = "test"):
    return load_demo_dataset(modality, subset, root=demo_root())[split]


def tiny_binding_model(seed: int = 0, modalities=("text", "vision", "audio")):
    """(a tiny MMFMModel of `modalities` seeded with `seed`, its MMFMProcessor with the demo tokenizer)."""
    tokenizer = load_demo_tokenizer(demo_root())
    configs = {
        "text": mmfm.MMFMTextConfig.from_preset("tiny", vocab_size=len(tokenizer)),
        "vision": mmfm.MMFMVisionConfig.from_preset("tiny"),
        "audio": mmfm.MMFMAudioConfig.from_preset("tiny"),
    }
    config = mmfm.MMFMConfig(projection_dim=16, **{f"{m}_config": configs[m] for m in modalities})
    torch.manual_seed(seed)
    return mmfm.MMFMModel(config).eval(), MMFMProcessor.from_model_config(config, tokenizer)
