"""``minires.utils``: PyTorch's ``torch.utils`` names that programs use (``utils.data``)."""
from . import data  # noqa: F401  (light: NumPy and minires.data.loader only)
