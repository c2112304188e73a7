"""Run in a fresh interpreter where `import mmfm` fails: load saved processors with transformers' Auto classes
(`trust_remote_code=True`), process the saved inputs and save the outputs.

Usage: python _load_processors_without_mmfm.py WORKDIR. WORKDIR holds `plan.pkl`: a list of
`(folder, auto class, call)` with `call` one of "tokenizer" (a text list), "single:<modality>" (the bare
processor on that modality's items) or "composite" (`processor(**items, **kwargs)`), and `inputs.pkl`:
`{"items": {modality: items}, "kwargs": {modality: options}}`. Writes `outputs.pt`:
`{(folder, auto class): {"class", "module", "outputs": {modality or "single": {key: tensor}}}}`.
"""

import pickle
import runpy
import sys
from pathlib import Path

runpy.run_path(str(Path(__file__).resolve().parents[1] / "_no_mmfm.py"))  # mmfm unimportable from here on

import torch
import transformers

workdir = sys.argv[1]
with open(f"{workdir}/plan.pkl", "rb") as handle:
    plan = pickle.load(handle)
with open(f"{workdir}/inputs.pkl", "rb") as handle:
    inputs = pickle.load(handle)
items, options = inputs["items"], inputs["kwargs"]

results = {}
for folder, auto_class, call in plan:
    processor = getattr(transformers, auto_class).from_pretrained(
        f"{workdir}/{folder}", trust_remote_code=True
    )
    if call == "tokenizer":
        outputs = {"single": dict(processor(items["text"], padding=True, return_tensors="pt"))}
    elif call.startswith("single:"):
        modality = call.split(":")[1]
        outputs = {
            "single": dict(processor(items[modality], return_tensors="pt", **options.get(modality, {})))
        }
    else:
        batch = processor(**items, **{f"{m}_kwargs": o for m, o in options.items()})
        outputs = {modality: dict(features) for modality, features in batch.items()}
    results[(folder, auto_class)] = {
        "class": type(processor).__name__,
        "module": type(processor).__module__,
        "outputs": outputs,
    }
torch.save(results, f"{workdir}/outputs.pt")
