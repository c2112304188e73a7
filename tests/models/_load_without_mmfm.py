"""Run in a fresh interpreter: load exported folders with `trust_remote_code=True` while `import mmfm`
is impossible, run the saved inputs, and save the outputs. Usage: python _load_without_mmfm.py WORKDIR NAME..."""

import runpy
import sys
from pathlib import Path

runpy.run_path(str(Path(__file__).resolve().parents[1] / "_no_mmfm.py"))  # mmfm unimportable from here on

import torch
from transformers import AutoModel

workdir, names = sys.argv[1], sys.argv[2:]
results = {}
for name in names:
    model = AutoModel.from_pretrained(f"{workdir}/{name}", trust_remote_code=True).eval()
    if type(model).__module__.startswith("mmfm"):
        raise SystemExit(f"{name} was loaded from mmfm, not from the exported code")
    inputs = torch.load(f"{workdir}/{name}_inputs.pt")
    with torch.no_grad():
        output = model(**inputs)
    if hasattr(output, "embeddings") and isinstance(output.embeddings, dict):
        results[name] = {"module": type(model).__module__, "embeddings": output.embeddings}
    else:
        results[name] = {
            "module": type(model).__module__,
            "pooler_output": output.pooler_output,
            "last_hidden_state": output.last_hidden_state,
        }
torch.save(results, f"{workdir}/remote_outputs.pt")
