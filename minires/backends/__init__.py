"""``minires.backends`` (PyTorch's ``torch.backends``): an old path kept for programs written for
torch. Its one module, ``cudnn``, is :mod:`minires.compat.cudnn`."""
from . import cudnn  # noqa: F401
