"""``torch.cuda`` for minires (``mr.cuda``): whether the GPU device can be used
(``mr.cuda.is_available()``, ``device_count()``, ``synchronize()``), three names of
:mod:`minires.devices.backend` under PyTorch's spelling."""
from ..devices.backend import cuda_device_count as device_count  # noqa: F401
from ..devices.backend import cuda_is_available as is_available  # noqa: F401
from ..devices.backend import synchronize  # noqa: F401
