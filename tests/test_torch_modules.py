"""The modules PyTorch programs import (issue 14, item 3): ``utils.data``, ``backends.cudnn``,
``nn.DataParallel``/``nn.parallel``, ``accelerator``, ``autograd.Variable``."""
import numpy as np
import pytest

import minires as torch           # the point: a PyTorch program with only the import changed
import minires.nn as nn
from minires.autograd import Variable
from minires.utils.data import (DataLoader, Dataset, Subset, TensorDataset, default_collate,
                                random_split)


class Squares(Dataset):
    def __len__(self):
        return 7

    def __getitem__(self, i):
        return np.full((2,), i, dtype=np.float32), i * i


def test_tensor_dataset_and_loader_keywords():
    x, y = torch.arange(20).reshape(10, 2).float(), torch.arange(10)
    ds = TensorDataset(x, y)
    assert len(ds) == 10 and ds[3][1].item() == 3 and ds[3][0].tolist() == [6.0, 7.0]
    loader = DataLoader(ds, batch_size=4, shuffle=True, num_workers=4, drop_last=True,
                        generator=7, pin_memory=True)
    seen = []
    for epoch in range(2):
        batches = list(loader)
        assert len(batches) == len(loader) == 2
        for xb, yb in batches:
            assert xb.shape == (4, 2) and yb.dtype == torch.int64
            np.testing.assert_array_equal(xb.numpy()[:, 0], 2 * yb.numpy())
            seen.append(yb.tolist())
    assert seen[:2] != seen[2:]                      # a new order each epoch
    again = [yb.tolist() for _, yb in DataLoader(ds, batch_size=4, shuffle=True, drop_last=True,
                                                 generator=7)]
    assert again == seen[:2]                         # one seed, one order
    plain = [yb.tolist() for _, yb in DataLoader(ds, batch_size=4)]
    assert plain == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_a_custom_dataset_is_collated_per_field():
    batches = list(DataLoader(Squares(), batch_size=3))
    assert [len(b[1]) for b in batches] == [3, 3, 1]
    images, labels = batches[1]
    assert images.shape == (3, 2) and images.dtype == torch.float32
    assert labels.tolist() == [9, 16, 25] and labels.dtype == torch.int64
    assert default_collate([1.5, 2.5]).dtype == torch.float64        # as PyTorch
    # a sampler is any sized iterable of indices (as PyTorch): served in its order
    (images, labels), = list(DataLoader(Squares(), batch_size=4, sampler=[3, 0, 5]))
    assert labels.tolist() == [9, 0, 25]
    with pytest.raises(NotImplementedError, match="batch_sampler"):
        DataLoader(Squares(), batch_sampler=[[0, 1]])


def test_random_split_and_subset():
    ds = Squares()
    a, b = random_split(ds, [5, 2], generator=np.random.default_rng(0))
    assert isinstance(a, Subset) and len(a) == 5 and len(b) == 2
    assert sorted(list(a.indices) + list(b.indices)) == list(range(7))
    assert a[0][1] == a.indices[0] ** 2
    c, d = random_split(ds, [0.5, 0.5])
    assert len(c) + len(d) == 7 and abs(len(c) - len(d)) == 1
    with pytest.raises(ValueError, match="sum to"):
        random_split(ds, [3, 3])


def test_cudnn_accelerator_dataparallel_variable():
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.deterministic = True
    assert torch.backends.cudnn.is_available() is False
    assert torch.accelerator.is_available() == torch.cuda.is_available()
    assert (torch.accelerator.current_accelerator() is None) != torch.cuda.is_available()
    torch.manual_seed(0)
    net = nn.Linear(3, 2)
    wrapped = nn.DataParallel(net)
    assert torch.nn.parallel.DataParallel is nn.DataParallel
    x = torch.randn(4, 3)
    np.testing.assert_array_equal(wrapped(x).numpy(), net(x).numpy())
    assert list(wrapped.state_dict()) == ["module.weight", "module.bias"]
    v = Variable(x, requires_grad=True)
    assert v.is_leaf and v.requires_grad and v.array is x.array
