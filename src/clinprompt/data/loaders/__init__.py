"""Native-format loaders; importing this package registers every built-in dataset.

One module per format family; each registers its datasets with
:func:`clinprompt.data.registry.register` on import. :func:`load_brat` reads BRAT standoff folders
(user datasets, see :mod:`clinprompt.data.user`).
"""

import clinprompt.data.synthetic  # noqa: F401  (the built-in SYNTHETIC suite)
from clinprompt.data.loaders import (  # noqa: F401  (register on import)
    ade,
    biored,
    chemprot,
    conll,
    covid_qa,
    csv_sum,
    ctparser,
    ddi,
    euadr,
    mcqa,
    mediqa_oe,
    mediqa_xml,
    nli4ct,
    pubmedqa,
    xlsx,
)
from clinprompt.data.loaders._common import NativeFormatError
from clinprompt.data.loaders.brat import load_brat

__all__ = ["NativeFormatError", "load_brat"]
