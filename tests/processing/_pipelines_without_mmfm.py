"""Run in a fresh interpreter where `import mmfm` fails: transformers' pipelines on exported mmfm folders
(`trust_remote_code=True`). Usage: python _pipelines_without_mmfm.py WORKDIR. WORKDIR holds `vision/`,
`text/` and `composite/` exports and `inputs.pkl` (`{"image", "clip", "text", "labels"}`); writes
`pipeline_outputs.pt` with each pipeline's answer and the classes it loaded. The test runs `run_pipelines` with
mmfm too, as the reference (nothing here imports mmfm)."""

import pickle
import runpy
import sys
from pathlib import Path

import torch
from transformers import pipeline


def run_pipelines(workdir: str, inputs: dict) -> dict:
    """Each pipeline's answer on `inputs` and the classes of the components it loaded."""
    results = {}
    images = pipeline("image-feature-extraction", model=f"{workdir}/vision", trust_remote_code=True)
    results["image-feature-extraction"] = images(inputs["image"], return_tensors=True)
    texts = pipeline("feature-extraction", model=f"{workdir}/text", trust_remote_code=True)
    results["feature-extraction"] = texts(inputs["text"], return_tensors=True)
    zero_shot_image = pipeline(
        "zero-shot-image-classification", model=f"{workdir}/composite", trust_remote_code=True
    )
    results["zero-shot-image-classification"] = zero_shot_image(
        inputs["image"], candidate_labels=inputs["labels"]
    )
    zero_shot_audio = pipeline(
        "zero-shot-audio-classification", model=f"{workdir}/composite", trust_remote_code=True
    )
    results["zero-shot-audio-classification"] = zero_shot_audio(
        inputs["clip"], candidate_labels=inputs["labels"]
    )
    results["modules"] = {
        "image_processor": type(images.image_processor).__module__,
        "zero_shot_image_processor": type(zero_shot_image.image_processor).__module__,
        "zero_shot_feature_extractor": type(zero_shot_audio.feature_extractor).__module__,
        "model": type(zero_shot_audio.model).__module__,
    }
    return results


if __name__ == "__main__":
    runpy.run_path(str(Path(__file__).resolve().parents[1] / "_no_mmfm.py"))  # mmfm unimportable from here on
    workdir = sys.argv[1]
    with open(f"{workdir}/inputs.pkl", "rb") as handle:
        inputs = pickle.load(handle)
    torch.save(run_pipelines(workdir, inputs), f"{workdir}/pipeline_outputs.pt")
