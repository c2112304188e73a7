"""MMFMAudioFeatureExtractor: log-mel correctness, padding, truncation, save/load, Auto class, validation."""

import json
import logging
import math
import shutil
import subprocess
import warnings

import numpy as np
import pytest
import torch
from transformers import AutoFeatureExtractor, PreTrainedConfig
from transformers.audio_utils import mel_filter_bank
from transformers.models.auto.feature_extraction_auto import FEATURE_EXTRACTOR_MAPPING

from mmfm.processing.feature_extraction_mmfm_audio import MMFMAudioFeatureExtractor

SR = 16000


def tone(frequency: float, seconds: float, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (amplitude * np.sin(2 * np.pi * frequency * t)).astype(np.float32)


def htk_mel(hz: float) -> float:
    return 2595.0 * math.log10(1.0 + hz / 700.0)


@pytest.fixture(scope="module")
def extractor():
    return MMFMAudioFeatureExtractor()


def test_output_contract_and_padding(extractor):
    clips = [tone(440, 1.0), tone(880, 0.5), np.random.default_rng(0).normal(0, 0.1, 4000).astype(np.float32)]
    out = extractor(clips, sampling_rate=SR, return_tensors="pt")
    frames = [1 + (len(c) - 400) // 160 for c in clips]
    assert frames == [98, 48, 23]
    assert out["input_features"].shape == (3, 98, 128) and out["input_features"].dtype == torch.float32
    assert out["attention_mask"].dtype == torch.int64
    assert out["attention_mask"].sum(1).tolist() == frames
    for i, clip in enumerate(clips):
        alone = extractor(clip, sampling_rate=SR, return_tensors="pt")
        assert alone["input_features"].shape == (1, frames[i], 128)
        torch.testing.assert_close(out["input_features"][i, : frames[i]], alone["input_features"][0])
        assert torch.all(out["input_features"][i, frames[i] :] == 0.0)  # padding_value
    # transformers' default return_tensors=None: per-clip arrays, padded like the tensors.
    listed = extractor(clips, sampling_rate=SR)
    assert isinstance(listed["input_features"], list) and listed["input_features"][2].shape == (98, 128)
    np.testing.assert_array_equal(np.stack(listed["input_features"]), out["input_features"].numpy())


def test_padding_options(extractor):
    clips = [tone(440, 0.5), tone(440, 0.3)]
    to_max = extractor(clips, sampling_rate=SR, padding="max_length", max_length=64, return_tensors="np")
    assert to_max["input_features"].shape == (2, 64, 128)
    left = MMFMAudioFeatureExtractor(padding_side="left")(clips, sampling_rate=SR, return_tensors="np")
    right = extractor(clips, sampling_rate=SR, return_tensors="np")
    n = right["attention_mask"][1].sum()
    np.testing.assert_array_equal(left["input_features"][1, -n:], right["input_features"][1, :n])
    assert left["attention_mask"][1, -n:].all() and not left["attention_mask"][1, :-n].any()
    ragged = extractor(clips, sampling_rate=SR, padding=False)
    assert [f.shape[0] for f in ragged["input_features"]] == [48, 28]


@pytest.mark.parametrize("frequency", [1000.0, 3000.0])
def test_pure_tone_peaks_at_its_mel_bin(extractor, frequency):
    features = extractor(tone(frequency, 1.0), sampling_rate=SR, return_tensors="np")["input_features"][0]
    # Independent expectation: the HTK mel filter whose centre is nearest to the tone.
    centres = np.linspace(htk_mel(20.0), htk_mel(SR / 2), 128 + 2)[1:-1]
    expected = int(np.argmin(np.abs(centres - htk_mel(frequency))))
    peaks = features.argmax(axis=1)
    assert (peaks == expected).all(), (expected, np.unique(peaks))
    assert features[:, expected].mean() > features.mean() + 1.0


def test_matches_naive_reference(extractor):
    clip = np.random.default_rng(1).normal(0, 0.2, 5000).astype(np.float32)
    ours = extractor(clip, sampling_rate=SR, return_tensors="np")["input_features"][0]
    # Framing, symmetric Hann window, power spectrum, HTK mel, log floor 1e-10, AST normalisation: by hand.
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(400) / 399)
    frames = np.stack([clip[s : s + 400] * window for s in range(0, len(clip) - 400 + 1, 160)])
    power = np.abs(np.fft.rfft(frames, n=400, axis=1)) ** 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # 3 empty filters at 128 bins / 201 FFT bins
        filters = mel_filter_bank(201, 128, 20, 8000, SR, norm=None, mel_scale="htk")
    reference = (np.log(np.maximum(power @ filters, 1e-10)) + 4.2677393) / (2 * 4.5689974)
    np.testing.assert_allclose(ours, reference, rtol=1e-4, atol=1e-4)


def test_truncation(extractor):
    clip = tone(500, 2.0)  # 198 frames
    with pytest.raises(ValueError, match=r"raw_speech.*198 frames.*max_length`=100.*truncation=True"):
        extractor(clip, sampling_rate=SR, max_length=100)
    cut = extractor(clip, sampling_rate=SR, max_length=100, truncation=True, return_tensors="np")[
        "input_features"
    ]
    full = MMFMAudioFeatureExtractor(max_length=None)(clip, sampling_rate=SR, return_tensors="np")[
        "input_features"
    ]
    assert cut.shape == (1, 100, 128) and full.shape == (1, 198, 128)
    np.testing.assert_array_equal(cut[0], full[0, :100])


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
def test_espeak_speech(tmp_path, extractor):
    from scipy.io import wavfile
    from scipy.signal import resample_poly

    path = tmp_path / "speech.wav"
    subprocess.run(
        ["espeak-ng", "-w", str(path), "self supervised learning"], check=True, capture_output=True
    )
    rate, pcm = wavfile.read(path)  # espeak-ng writes 22050 Hz int16
    with pytest.raises(ValueError, match=rf"sampling_rate.*{rate} Hz.*expects 16000 Hz.*[Rr]esample"):
        extractor(pcm, sampling_rate=rate)
    with pytest.raises(TypeError, match=r"raw_speech.*float.*int16.*32768"):
        extractor(pcm, sampling_rate=SR)
    waveform = resample_poly(pcm.astype(np.float32) / 32768, SR, rate).astype(np.float32)
    out = extractor([waveform], sampling_rate=SR, return_tensors="pt")
    assert out["input_features"].shape == (1, 1 + (len(waveform) - 400) // 160, 128)
    assert torch.isfinite(out["input_features"]).all()


def test_warns_without_sampling_rate(extractor, caplog):
    with caplog.at_level(logging.WARNING, logger="mmfm"):
        extractor(tone(440, 0.1))
    assert "sampling_rate" in caplog.text


def test_save_load_round_trip(tmp_path):
    extractor = MMFMAudioFeatureExtractor(
        num_mel_bins=64,
        n_fft=512,
        hop_length=128,
        f_min=50.0,
        f_max=7000.0,
        max_length=300,
        padding="max_length",
        truncation=True,
        mean=-3.0,
        std=3.0,
    )
    json.dumps(extractor.to_dict())
    extractor(tone(440, 0.1), sampling_rate=SR)  # builds the cached filters, which must not be saved
    extractor.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "preprocessor_config.json").read_text())
    assert "mel_filters" not in saved and saved["num_mel_bins"] == 64
    loaded = MMFMAudioFeatureExtractor.from_pretrained(tmp_path)
    assert loaded.to_dict() == extractor.to_dict()
    clips = [tone(440, 4.0), tone(300, 0.5)]
    expected = extractor(clips, sampling_rate=SR, return_tensors="np")
    actual = loaded(clips, sampling_rate=SR, return_tensors="np")
    assert actual["input_features"].shape == (2, 300, 64)
    for key in expected:
        np.testing.assert_array_equal(actual[key], expected[key])


class _DummyAudioConfig(PreTrainedConfig):
    model_type = "mmfm_test_dummy_audio"


def test_auto_feature_extractor_registration(tmp_path):
    AutoFeatureExtractor.register(_DummyAudioConfig, MMFMAudioFeatureExtractor, exist_ok=True)
    try:
        MMFMAudioFeatureExtractor(num_mel_bins=80).save_pretrained(tmp_path)
        loaded = AutoFeatureExtractor.from_pretrained(tmp_path)
        assert type(loaded) is MMFMAudioFeatureExtractor and loaded.num_mel_bins == 80
    finally:
        FEATURE_EXTRACTOR_MAPPING._extra_content.pop(_DummyAudioConfig, None)


def _with(value, index, clip):
    clip = clip.copy()
    clip[index] = value
    return clip


@pytest.mark.parametrize(
    "speech, kwargs, error, match",
    [
        (tone(440, 0.1), {"sampling_rate": 44100}, ValueError, r"sampling_rate.*44100.*16000.*[Rr]esample"),
        (np.stack([tone(440, 0.1)] * 2), {}, ValueError, r"raw_speech.*mono.*\(2, 1600\).*x\.mean\(axis=0\)"),
        (
            np.stack([tone(440, 0.1)] * 2, axis=1),
            {},
            ValueError,
            r"raw_speech.*mono.*\(1600, 2\).*x\.mean\(axis=1\)",
        ),
        ([tone(440, 0.1), np.zeros((2, 800), np.float32)], {}, ValueError, r"raw_speech\[1\].*mono"),
        (np.zeros(0, np.float32), {}, ValueError, r"raw_speech.*empty waveform"),
        (np.zeros(399, np.float32), {}, ValueError, r"raw_speech.*399 samples.*one STFT frame.*400"),
        (_with(np.nan, 100, tone(440, 0.1)), {}, ValueError, r"raw_speech.*finite.*index \(100,\)"),
        ([tone(440, 0.1), _with(np.inf, 5, tone(440, 0.1))], {}, ValueError, r"raw_speech\[1\].*finite"),
        ([tone(440, 0.1), 0.5], {}, ValueError, r"raw_speech.*mixes ranks"),
        ([], {}, ValueError, r"raw_speech.*empty list"),
        ((tone(440, 0.1) * 32767).astype(np.int16), {}, TypeError, r"raw_speech.*float.*int16"),
        ("speech.wav", {}, TypeError, r"raw_speech.*1-D numpy array"),
        (tone(440, 0.1), {"return_tensors": "tf"}, ValueError, r"return_tensors"),
        (
            [tone(440, 0.1), tone(440, 0.2)],
            {"padding": False, "return_tensors": "pt"},
            ValueError,
            r"padding",
        ),
    ],
)
def test_invalid_inputs(extractor, speech, kwargs, error, match):
    kwargs = {"sampling_rate": SR, **kwargs}
    with pytest.raises(error, match=match):
        extractor(speech, **kwargs)


def test_invalid_options():
    with pytest.raises(ValueError, match=r"padding='max_length'.*max_length"):
        MMFMAudioFeatureExtractor(max_length=None)(tone(440, 0.1), sampling_rate=SR, padding="max_length")
    with pytest.raises(ValueError, match=r"padding.*'longest'.*got 'shortest'"):
        MMFMAudioFeatureExtractor(padding="shortest")
    with pytest.raises(ValueError, match=r"f_min.*f_max.*8000"):
        MMFMAudioFeatureExtractor(f_max=12000)
    with pytest.raises(TypeError, match=r"num_mel_bins.*int"):
        MMFMAudioFeatureExtractor(num_mel_bins=64.0)
