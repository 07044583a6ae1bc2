"""``minires.accelerator`` is :mod:`minires.compat.accelerator` (moved there): this old path names the very same
module, not a copy, so its state and whatever is patched on it are shared."""
import sys

from .compat import accelerator as _module

sys.modules[__name__] = _module
