"""``minires.strict_device`` is :mod:`minires.devices.strict` (moved there): this old path names the
very same module, not a copy, so its state and whatever is patched on it are shared."""
import sys

from .devices import strict as _module

sys.modules[__name__] = _module
