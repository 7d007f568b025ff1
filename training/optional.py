"""Optional dependencies: one line naming the extra to install, and pictures that can never end a run."""

from __future__ import annotations

import functools
import logging

log = logging.getLogger(__name__)

# top-level module -> what to install for it
EXTRAS = {
    "torch": "pip install 'flowprep[train]'",
    "torchvision": "pip install torchvision",
    "matplotlib": "pip install 'flowprep[train]'",
    "s3fs": "pip install 'flowprep[s3]'",
    "tensorboard": "pip install tensorboard",
}


def missing_message(exc: ImportError, what: str) -> str | None:
    """'flowprep-train teacher needs torch, which is not installed: pip install ...', or None for a
    module that is not one of the optional ones (a real bug: let it raise)."""
    name = (getattr(exc, "name", None) or "").split(".")[0]
    if name not in EXTRAS:
        return None
    return f"{what} needs {name}, which is not installed: {EXTRAS[name]}"


def drawing(plot):
    """Decorates a function `plot(..., png)` that writes a picture: any failure (matplotlib missing, a
    bad value, a full disk) is logged and the run goes on. Checkpoints and metrics are written before
    the pictures, so a run that trained for hours never dies for want of a plotting library."""

    @functools.wraps(plot)
    def safe(*args, **kwargs):
        try:
            return plot(*args, **kwargs)
        except ImportError as exc:
            log.warning("%s not drawn: %s", plot.__name__, missing_message(exc, "plotting") or exc)
        except Exception as exc:  # a picture is never worth a run
            log.warning("%s failed, picture not drawn: %r", plot.__name__, exc)
        return None

    return safe
