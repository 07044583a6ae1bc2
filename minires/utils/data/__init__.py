"""``minires.utils.data`` is :mod:`minires.compat.data` and ``minires.utils.data.distributed`` is
:mod:`minires.compat.data.distributed` (moved there): these old paths name the very same modules,
not copies, so their state and whatever is patched on them are shared."""
import sys

from ...compat import data as _module
from ...compat.data import distributed as _distributed

sys.modules[__name__] = _module
sys.modules[__name__ + ".distributed"] = _distributed
