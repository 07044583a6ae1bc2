"""``minires.host_allocator`` is :mod:`minires.devices.host_allocator` (moved there): this old path
names the very same module, not a copy, so its state and whatever is patched on it are shared."""
import sys

from .devices import host_allocator as _module

sys.modules[__name__] = _module
