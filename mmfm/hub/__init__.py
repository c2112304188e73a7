"""Publishing: a run folder, a model folder or a PEFT adapter folder to the Hugging Face Hub, with a model card.

    mmfm-publish outputs/default --repo-id me/clip-demo          # or: python -m mmfm.hub ...
    mmfm-publish outputs/default --dry-run                       # the folder and card only, nothing uploaded

    from mmfm.hub import publish
    publish("outputs/default", "me/clip-demo", private=True)

A run can also push itself when it ends (`hub.push_to_hub: true`, `hub.model_id: me/clip-demo` in its config).
Modules: `source` (what a folder is), `facts` (what the card says), `card` (the card), `publish` (the upload).
"""

from .card import DEFAULT_LICENSE, build_model_card
from .publish import PublishResult, assemble, check_push_settings, publish, push_run
from .source import PublishSource, resolve_source

__all__ = [
    "DEFAULT_LICENSE",
    "PublishResult",
    "PublishSource",
    "assemble",
    "build_model_card",
    "check_push_settings",
    "publish",
    "push_run",
    "resolve_source",
]
