"""Google Cloud Dataflow: validated submission, offline dry runs, code shipping, Flex Templates.

* ``options``: Dataflow options from the command line and a ``--profile`` file, validated
  before anything is contacted (Beam's own checks hang on a bad temp location).
* ``preflight``: network and credential checks bounded in time (Beam retries for minutes).
* ``shipping`` / ``wheels``: how the model's component modules and plugboard_beam reach the workers.
* ``builders``: the hook that adds a model's transforms to a pipeline (batch now; streaming plugs in).
* ``dryrun``: the complete job built offline (proto, CreateJob request, staged files) and its summary.
* ``runner``: ``DataflowRunner``, the ``--runner dataflow`` of ``process run``.
* ``launcher``: the Flex Template entry point (``pipelines/main.py``).
"""

from __future__ import annotations

import os
from pathlib import Path


def _bound_metadata_probe() -> None:
    """Keep google-auth's GCE metadata-server probe short (read when google-auth first probes).

    Off Google hardware (the DMI product name is readable and is not Google's) the probe is
    skipped altogether; on GCE, Cloud Run and the Flex Template launcher it still runs, so
    credentials from the metadata server keep working there.
    """
    os.environ.setdefault("GCE_METADATA_TIMEOUT", "2")
    os.environ.setdefault("GCE_METADATA_DETECT_RETRIES", "1")
    if any(os.environ.get(v) for v in ("GCE_METADATA_HOST", "GCE_METADATA_ROOT", "GCE_METADATA_IP")):
        return
    try:
        product = Path("/sys/class/dmi/id/product_name").read_text()
    except OSError:
        return
    if product.strip() and "google" not in product.lower():
        os.environ.setdefault("NO_GCE_CHECK", "true")


_bound_metadata_probe()
