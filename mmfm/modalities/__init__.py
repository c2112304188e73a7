"""Modality specs: what mmfm outside the exportable model folder needs to know about each modality, in one
place per modality (`mmfm/modalities/<modality>.py`, a `SPEC = ModalitySpec(...)`), iterated everywhere else.

The modalities and their order come from the model folder's `mmfm_modalities.py`; a modality listed there
without a spec module here is an import error naming the missing file.
"""

from .spec import ModalitySpec, get_modality, modality_of_config, modality_specs

__all__ = ["ModalitySpec", "get_modality", "modality_of_config", "modality_specs"]
