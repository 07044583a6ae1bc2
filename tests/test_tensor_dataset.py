"""One TensorDataset: PyTorch's form (``TensorDataset(*tensors)``) and minires's (images, labels,
classes) host arrays, importable from minires.data and minires.utils.data alike."""
import numpy as np
import pytest

import minires as mr
from minires import data, utils  # noqa: F401
from minires.data import DataLoader as CourseLoader
from minires.utils.data import DataLoader, Dataset, TensorDataset


def test_one_class_under_both_names():
    assert mr.data.TensorDataset is mr.utils.data.TensorDataset is TensorDataset
    assert issubclass(TensorDataset, Dataset)


def test_pytorch_form_takes_any_number_of_tensors_and_indexes_them_as_tensors():
    x, y, w = mr.arange(12).reshape(6, 2).float(), mr.arange(6), mr.ones(6)
    ds = TensorDataset(x, y, w)
    assert len(ds) == 6 and len(ds.tensors) == 3 and ds.tensors[0] is x
    a, b, c = ds[4]
    assert isinstance(a, mr.Tensor) and a.tolist() == [8.0, 9.0] and b.item() == 4
    assert c.item() == 1.0
    (only,) = TensorDataset(x)[1]
    assert only.tolist() == [2.0, 3.0]
    xb, yb, wb = next(iter(DataLoader(ds, batch_size=4)))
    assert xb.shape == (4, 2) and yb.tolist() == [0, 1, 2, 3] and wb.shape == (4,)


def test_minires_form_keeps_host_arrays_integer_labels_and_classes():
    images = np.zeros((5, 1, 2, 2), np.float32)
    ds = TensorDataset(images, np.array([0, 2, 1, 2, 0], np.int32))
    assert ds.labels.dtype == np.int64 and ds.classes == ["0", "1", "2"] and ds.num_classes == 3
    image, label = ds[1]
    assert isinstance(image, np.ndarray) and image.shape == (1, 2, 2)
    assert type(label) is int and label == 2
    batch_images, batch_labels = ds[1:3]
    assert batch_images.shape == (2, 1, 2, 2) and batch_labels.tolist() == [2, 1]
    named = TensorDataset(images, np.arange(5) % 2, ["cat", "dog"])       # classes, positionally
    assert named.classes == ["cat", "dog"] and len(named.tensors) == 2
    assert TensorDataset(images, np.arange(5) % 2, classes=("a", "b")).classes == ["a", "b"]
    ds.images = ds.images + 1                        # what load_data does: the mean subtracted
    assert ds[0][0].max() == 1.0 and ds.tensors[0] is ds.images
    images_b, labels_b = next(iter(CourseLoader(ds, batch_size=5)))
    assert images_b.shape == (5, 1, 2, 2) and labels_b.tolist() == ds.labels.tolist()


def test_tensors_feed_minires_loader_too():
    ds = TensorDataset(mr.zeros(4, 1, 2, 2), mr.tensor(np.array([1, 0, 1, 0])))
    images, labels = next(iter(CourseLoader(ds, batch_size=4)))
    assert images.shape == (4, 1, 2, 2) and labels.tolist() == [1, 0, 1, 0]


@pytest.mark.parametrize("args, error, message", [
    ((), ValueError, "at least one tensor"),
    ((np.zeros((3, 2)), np.zeros(4, np.int64)), ValueError, "3 images but 4 labels"),
    ((np.zeros((3, 2)), np.zeros((3, 1), np.int64)), ValueError, "labels must be 1-D"),
    ((np.zeros((3, 2)), np.zeros(3)), TypeError, "labels must be integers"),
    ((mr.zeros(3, 2), mr.zeros(4)), ValueError, "first dims differ"),
    ((mr.tensor(1.0),), ValueError, "first dim"),
])
def test_bad_fields_are_one_line_naming_the_class(args, error, message):
    with pytest.raises(error, match=message):
        TensorDataset(*args)
