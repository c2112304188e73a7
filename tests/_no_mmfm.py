"""Make `mmfm` unimportable in this interpreter, as on a machine where it is not installed.

The `_*_without_mmfm.py` scripts run in a fresh interpreter from a temporary folder (the repository is not on
`sys.path`), so they run this file by path before importing anything else:

    runpy.run_path(str(Path(__file__).resolve().parents[1] / "_no_mmfm.py"))
"""

import sys


class _BlockMMFM:
    """A meta-path finder that refuses `mmfm` and its submodules."""

    def find_spec(self, name, path=None, target=None):
        if name == "mmfm" or name.startswith("mmfm."):
            raise ImportError("mmfm is not installed here")


sys.meta_path.insert(0, _BlockMMFM())
try:
    import mmfm  # noqa: F401
except ImportError:
    pass
else:
    raise SystemExit("mmfm is importable; the test would prove nothing")
