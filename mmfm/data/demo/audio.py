"""Audio subsets of the demo corpus, synthesised with espeak-ng.

Every row holds a 16 kHz mono waveform: espeak-ng writes 22,050 Hz 16-bit WAV, which is scaled to
float32 in [-1, 1], resampled with `scipy.signal.resample_poly(x, 160, 441)` (22,050 * 160 / 441 =
16,000) and trimmed of the leading/trailing silence espeak-ng adds.

Columns shared by all subsets: `audio` List(float32) of shape `(num_samples,)`, `sampling_rate` int
(16000), `transcript` str, `voice` str (e.g. "en-gb-scotland+f3 speed=150 pitch=60").

Subsets:
    spoken_digits: "zero".."nine", `DIGIT_RENDITIONS` renditions each; `label` ClassLabel(DIGIT_WORDS).
    spoken_words: `KEYWORDS` (the Speech Commands v1 words other than digits), `WORD_RENDITIONS` each;
        `label` ClassLabel(KEYWORDS).
    speech_captions (train only): `NUM_SPEECH_CAPTIONS` spoken sentences (Lee news sentences from
        gensim when installed, shape captions otherwise), no label.

Each rendition draws an accent, a voice variant, a speed (`-s`) and a pitch (`-p`) from a seeded
generator in the main thread; the subprocess calls then run in a thread pool, so results do not
depend on scheduling. espeak-ng itself is deterministic for fixed arguments.
"""

from __future__ import annotations

import io
import logging
import os
import re
import subprocess
import wave
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from datasets import ClassLabel, Features, List, Value

from .sources import (
    BuildResult,
    SourceUnavailable,
    cap_indices,
    labelled_splits,
    list_array,
    make_splits,
    require_module,
    require_program,
    subset_rng,
)
from .vision import DIGIT_WORDS, render_shapes

logger = logging.getLogger(__name__)

SAMPLING_RATE = 16_000
ESPEAK_RATE = 22_050
ESPEAK_INSTALL = "apt-get install espeak-ng"
ACCENTS = (
    "en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp",
    "en-029", "en-us-nyc", "en-gb-x-gbclan", "en-gb-x-gbcwmd",
)  # fmt: skip
VARIANTS = tuple(f"m{i}" for i in range(1, 8)) + tuple(f"f{i}" for i in range(1, 6))
SPEED_RANGE = (120, 200)  # words per minute
PITCH_RANGE = (30, 70)  # 0..99, espeak-ng default 50
KEYWORDS = (
    "yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go",
    "bed", "bird", "cat", "dog", "happy", "house", "marvin", "sheila", "tree", "wow",
)  # fmt: skip
DIGIT_RENDITIONS = 100
WORD_RENDITIONS = 40
NUM_SPEECH_CAPTIONS = 500
SILENCE_THRESHOLD = 1e-3
SILENCE_MARGIN = SAMPLING_RATE // 100  # keep 10 ms around the speech


def sample_voices(n: int, rng: np.random.Generator) -> list[tuple[str, str, int, int]]:
    """`n` seeded (accent, variant, speed, pitch) draws."""
    return [
        (
            ACCENTS[rng.integers(len(ACCENTS))],
            VARIANTS[rng.integers(len(VARIANTS))],
            int(rng.integers(SPEED_RANGE[0], SPEED_RANGE[1] + 1)),
            int(rng.integers(PITCH_RANGE[0], PITCH_RANGE[1] + 1)),
        )
        for _ in range(n)
    ]


def describe_voice(voice: tuple[str, str, int, int]) -> str:
    accent, variant, speed, pitch = voice
    return f"{accent}+{variant} speed={speed} pitch={pitch}"


def synthesize(text: str, voice: tuple[str, str, int, int], program: str = "espeak-ng") -> np.ndarray:
    """Speak `text` with espeak-ng and return a 16 kHz float32 waveform of shape `(num_samples,)`."""
    from scipy.signal import resample_poly

    accent, variant, speed, pitch = voice
    command = [program, "-v", f"{accent}+{variant}", "-s", str(speed), "-p", str(pitch), "--stdout", text]
    wav = subprocess.run(command, check=True, capture_output=True).stdout
    with wave.open(io.BytesIO(wav)) as f:
        if f.getframerate() != ESPEAK_RATE or f.getsampwidth() != 2 or f.getnchannels() != 1:
            raise RuntimeError(
                f"espeak-ng wrote {f.getframerate()} Hz, {f.getsampwidth() * 8}-bit, "
                f"{f.getnchannels()} channel(s); expected {ESPEAK_RATE} Hz 16-bit mono."
            )
        pcm = np.frombuffer(f.readframes(f.getnframes()), dtype="<i2")
    audio = resample_poly(pcm.astype(np.float32) / 32768.0, 160, 441).astype(np.float32)
    voiced = np.flatnonzero(np.abs(audio) > SILENCE_THRESHOLD)
    if voiced.size:
        audio = audio[max(0, voiced[0] - SILENCE_MARGIN) : voiced[-1] + 1 + SILENCE_MARGIN]
    return np.clip(audio, -1.0, 1.0)


def synthesize_all(texts: list[str], voices: list[tuple[str, str, int, int]]) -> list[np.ndarray]:
    """`synthesize` over pairs in a thread pool (each call is a ~10 ms subprocess); order is kept."""
    program = require_program("espeak-ng", ESPEAK_INSTALL)
    workers = min(8, 2 * (os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda tv: synthesize(tv[0], tv[1], program), zip(texts, voices)))


def _audio_features(extra: dict) -> Features:
    return Features(
        {
            "audio": List(Value("float32")),
            "sampling_rate": Value("int64"),
            **extra,
            "transcript": Value("string"),
            "voice": Value("string"),
        }
    )


def _build_keywords(words: tuple[str, ...], renditions: int, name: str, max_samples, seed) -> BuildResult:
    require_program("espeak-ng", ESPEAK_INSTALL)
    rng = subset_rng(seed, name)
    labels = [k for k in range(len(words)) for _ in range(renditions)]
    keep = cap_indices(labels, max_samples, rng)
    labels = [labels[i] for i in keep]
    voices = sample_voices(len(labels), rng)
    texts = [words[k] for k in labels]
    waves = synthesize_all(texts, voices)
    columns = {
        "audio": list_array(waves, "float32"),
        "sampling_rate": [SAMPLING_RATE] * len(waves),
        "label": labels,
        "transcript": texts,
        "voice": [describe_voice(v) for v in voices],
    }
    features = _audio_features({"label": ClassLabel(names=list(words))})
    return BuildResult(
        dataset=labelled_splits(columns, features, "label", rng),
        source=f"espeak-ng speech of {len(words)} words x {renditions} seeded renditions (accents "
        f"{', '.join(ACCENTS)}; variants m1-m7, f1-f5; speed {SPEED_RANGE}; pitch {PITCH_RANGE}); "
        "16 kHz; seeded stratified 80/20 split",
        license="generated with espeak-ng (GPL program); the audio is generated",
    )


def build_spoken_digits(max_samples: int | None, seed: int) -> BuildResult:
    """Spoken digits "zero".."nine" (1,000 rows), a speaker-varied analogue of spoken-digit datasets."""
    return _build_keywords(DIGIT_WORDS, DIGIT_RENDITIONS, "audio/spoken_digits", max_samples, seed)


def build_spoken_words(max_samples: int | None, seed: int) -> BuildResult:
    """Speech-Commands-style keywords (800 rows)."""
    return _build_keywords(KEYWORDS, WORD_RENDITIONS, "audio/spoken_words", max_samples, seed)


def lee_sentences(rng: np.random.Generator, n: int) -> list[str]:
    """A seeded sample of `n` plain sentences of 6-16 words from gensim's Lee news corpus."""
    from .text import lee_documents

    sentences = []
    for doc in lee_documents():
        for sentence in re.split(r"(?<=[.!?])\s+", doc):
            words = sentence.split()
            # Letters and simple punctuation only: quotes and odd symbols are read out by espeak-ng.
            if 6 <= len(words) <= 16 and re.fullmatch(r"[A-Za-z0-9 ,.'\-]+[.!?]", sentence):
                sentences.append(sentence)
    picked = rng.choice(len(sentences), size=min(n, len(sentences)), replace=False)
    return [sentences[i] for i in np.sort(picked)]


def build_speech_captions(max_samples: int | None, seed: int) -> BuildResult:
    """Spoken sentences with transcripts: 4/5 Lee news sentences, 1/5 shape captions."""
    require_program("espeak-ng", ESPEAK_INSTALL)
    rng = subset_rng(seed, "audio/speech_captions")
    n = NUM_SPEECH_CAPTIONS if max_samples is None else min(NUM_SPEECH_CAPTIONS, max_samples)
    notes = []
    try:
        require_module("gensim", "pip install gensim")
        texts = lee_sentences(rng, n - n // 5)
    except SourceUnavailable as err:
        logger.warning("audio/speech_captions: using shape captions only: %s", err)
        notes.append(f"Lee news sentences left out: {err}")
        texts = []
    texts += [render_shapes(rng)[2] for _ in range(n - len(texts))]
    voices = sample_voices(len(texts), rng)
    waves = synthesize_all(texts, voices)
    columns = {
        "audio": list_array(waves, "float32"),
        "sampling_rate": [SAMPLING_RATE] * len(waves),
        "transcript": texts,
        "voice": [describe_voice(v) for v in voices],
    }
    return BuildResult(
        dataset=make_splits(columns, _audio_features({})),
        source="espeak-ng speech of sentences from gensim's lee_background.cor and of generated shape "
        "captions, seeded voices; 16 kHz",
        license="generated with espeak-ng (GPL program); sentences from gensim test data (licence "
        "not stated)",
        notes=notes,
    )


SUBSETS = {
    "spoken_digits": build_spoken_digits,
    "spoken_words": build_spoken_words,
    "speech_captions": build_speech_captions,
}
