"""Types that do not interact: what the kernel says is all we know."""
import dataclasses

from vgpu_placement.model import base


@dataclasses.dataclass(frozen=True)
class Independent(base.Model):
    kind = base.INDEPENDENT

    def free_after(self, consumed, types):
        return None            # nothing to predict: the kernel's word only
