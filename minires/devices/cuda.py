"""``minires.cuda``: whether the GPU device can be used (``mr.cuda.is_available()``)."""
from .backend import cuda_device_count as device_count  # noqa: F401
from .backend import cuda_is_available as is_available  # noqa: F401
from .backend import synchronize  # noqa: F401
