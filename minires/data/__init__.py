from .embedded import CLASSES, ShapesDataset, load_embedded, make_shapes_dataset  # noqa: F401
from .loader import DataLoader, Subset, TensorDataset, get_batch, train_val_split  # noqa: F401
