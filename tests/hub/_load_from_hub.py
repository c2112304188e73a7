"""Run in a fresh interpreter against the fake Hub (HF_ENDPOINT): download REPO as a user without mmfm would,
load it with `trust_remote_code=True`, and save its weights and a tokenizer round trip to OUT.
Usage: python _load_from_hub.py REPO OUT"""

import sys


class _BlockMMFM:
    """A meta-path finder that makes `mmfm` unimportable, as on a machine without it."""

    def find_spec(self, name, path=None, target=None):
        if name == "mmfm" or name.startswith("mmfm."):
            raise ImportError("mmfm is not installed here")


sys.meta_path.insert(0, _BlockMMFM())

import torch
from transformers import AutoModel, AutoTokenizer

repo, out = sys.argv[1], sys.argv[2]
model = AutoModel.from_pretrained(repo, trust_remote_code=True)
if type(model).__module__.startswith("mmfm"):
    raise SystemExit("the model was loaded from mmfm, not from the published code")
tokenizer = AutoTokenizer.from_pretrained(repo)
torch.save(
    {"module": type(model).__module__, "state_dict": model.state_dict(),
     "input_ids": tokenizer("a handwritten digit seven")["input_ids"]},
    out,
)  # fmt: skip
