"""``minires.backends``: PyTorch's ``torch.backends`` flags that programs set (``cudnn``)."""
from . import cudnn  # noqa: F401
