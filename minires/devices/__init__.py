"""Devices, one package: where arrays live, how they cross between host and device, and the host
memory they are made of.

* :mod:`.backend`: the device registry (``"cpu"``, ``"cuda"``, ``"strict"``), each device's array
  module ``xp`` and the only two doors between host and device (``to_host``, ``to_device``);
* :mod:`.strict`: the strict device, NumPy behind a wrapper that behaves like a GPU;
* :mod:`.host_allocator`: ``tune_host_allocator``, glibc's malloc set to keep host memory between
  training steps (an explicit call, never made at import).

PyTorch's ``torch.cuda`` and ``torch.accelerator`` queries are shims over :mod:`.backend`, in
:mod:`minires.compat` with the other shims. The old paths ``minires.backend``,
``minires.strict_device`` and ``minires.host_allocator`` name these very modules. Nothing is
imported here: each module loads when it is asked for.
"""
