"""``minires.optim``: SGD, Adam, Adadelta and learning-rate schedules, shaped after
``torch.optim``."""
from . import lr_scheduler  # noqa: F401
from .adadelta import Adadelta  # noqa: F401
from .adam import Adam  # noqa: F401
from .optimizer import Optimizer  # noqa: F401
from .sgd import SGD  # noqa: F401
