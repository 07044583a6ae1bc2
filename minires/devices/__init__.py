"""Devices, one package: where arrays live and how they cross between host and device.

* :mod:`.backend`: the device registry (``"cpu"``, ``"cuda"``, ``"strict"``), each device's array
  module ``xp`` and the only two doors between host and device (``to_host``, ``to_device``);
* :mod:`.strict`: the strict device, NumPy behind a wrapper that behaves like a GPU;
* :mod:`.cuda`, :mod:`.accelerator`: PyTorch's ``torch.cuda`` and ``torch.accelerator`` queries.

The old paths (``minires.backend``, ``minires.strict_device``, ``minires.cuda``,
``minires.accelerator``) name these very modules. Nothing is imported here: each module loads
when it is asked for.
"""
