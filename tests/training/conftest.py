"""The training tests read a small demo corpus of their own, built once per checkout (a few hundred rows
per subset, about 25 s) under `.cache/mmfm-tests`, so they pass on a fresh clone and never depend on, or
write into, the user's own `MMFM_HOME`."""

import os

import pytest
from filelock import FileLock

from mmfm.data.demo import build_demo_corpus

from ._runs import REPO

TEST_HOME = REPO / ".cache" / "mmfm-tests"
SUBSETS = [
    "text/corpus", "text/sentiment", "text/newsgroups", "vision/digits", "vision/shapes", "audio/spoken_digits", "audio/spoken_words",
    "audio/speech_captions", "graph/molecules", "graph/molecule_names", "timeseries/ucr", "timeseries/captioned",
]  # fmt: skip


@pytest.fixture(scope="session", autouse=True)
def small_demo_corpus():
    """Point MMFM_HOME (read by the recipe in this process and by launched ones) at the test corpus."""
    TEST_HOME.mkdir(parents=True, exist_ok=True)
    with FileLock(str(TEST_HOME / "build.lock")):  # pytest-xdist workers build it once between them
        build_demo_corpus(TEST_HOME / "demo", subsets=SUBSETS, max_samples=400, progress=False)
    before = os.environ.get("MMFM_HOME")
    os.environ["MMFM_HOME"] = str(TEST_HOME)
    yield TEST_HOME
    if before is None:
        os.environ.pop("MMFM_HOME", None)
    else:
        os.environ["MMFM_HOME"] = before
