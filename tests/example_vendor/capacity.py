"""How an ACME A1 shares its capacity, as its vendor documents it (pure).

One GPU has 8 slices and runs at most 4 vGPUs at once: ``acme-small``
takes 1 slice, ``acme-large`` 4. The counts its driver shows cannot teach
the project that cap (an empty GPU shows 4 small and 2 large, which reads
as one pool where a large costs 2 smalls), so the driver contributes this
detector.
"""
from vgpu_placement.model import pool as pool_model

SLICES = 8
MAX_VGPUS = 4
COSTS = {'acme-small': 1, 'acme-large': 4}


def detect(facts):
    """model.detect.ParentFacts -> (model, note) for an ACME GPU, else None."""
    ids = {t.id for t in facts.parent.types}
    if facts.override is not None or not ids or not ids <= set(COSTS):
        return None
    return pool_model.Pool({'slices': SLICES},
                           {t: {'slices': COSTS[t]} for t in ids},
                           MAX_VGPUS, 'ACME A1 slices'), 'ACME A1 slices'
