from minires import nn
from collections import OrderedDict

# The plain/residual network of the seed paper review ("2021 DeepSleep Paper Review", section 3,
# "구현"), reconstructed from OCR-damaged text. Only the OCR damage is repaired: the underscores lost
# in __init__ / in_c / out_c / kernel_size / num_features / num_blocks / add_module, the closing
# parentheses of the nn.Sequential(...) calls, and f'block(i)' -> f'block{i}'. Everything else is
# the seed's code as written (including its stem: conv 7x7/2 padding 2, max pool 2x2/2 padding 1,
# BN, ReLU; and its option-B projection shortcut that exists, unused, in every block).
#
# The first line is the only one that selects the framework: tests/test_seed_code.py also runs
# this very text under PyTorch with that line replaced by `import torch.nn as nn`.


# ====== Plain/Residual Block ========
class Block(nn.Module):
    def __init__(self, in_c=64, double=True, residual=False):
        super(Block, self).__init__()
        self.residual = residual
        self.double = double
        out_c = 2*in_c if double else in_c
        stride = 2 if double else 1
        self.conv1 = nn.Sequential(
            nn.Conv2d(in_channels=in_c, out_channels=out_c, kernel_size=3, stride=stride, padding=1),
            nn.BatchNorm2d(num_features=out_c),
            nn.ReLU())
        self.conv2 = nn.Sequential(
            nn.Conv2d(in_channels=out_c, out_channels=out_c, kernel_size=3, stride=1, padding=1),
            nn.BatchNorm2d(num_features=out_c))
        self.downsample = nn.Sequential(
            nn.Conv2d(in_c, out_c, kernel_size=1, stride=stride, bias=False),
            nn.BatchNorm2d(out_c))
        self.relu = nn.ReLU()

    def forward(self, x):
        out = self.conv1(x)
        out = self.conv2(out)
        # === The only difference between Plain and Residual ===
        if self.residual:
            if self.double:  # match dimension
                x = self.downsample(x)  # option (B) projection
            out = out + x
        out = self.relu(out)
        return out


# ======= Plain/Residual Stage =======
class Stage(nn.Module):
    def __init__(self, num_blocks=3, in_c=64, double=True, residual=False):
        super(Stage, self).__init__()
        out_c = 2*in_c if double else in_c
        doubles = [double] + [False]*(num_blocks-1)
        channels = [in_c] + [out_c]*(num_blocks-1)
        self.stage = nn.Sequential(OrderedDict([]))
        for i in range(num_blocks):
            self.stage.add_module(f'block{i}', Block(in_c=channels[i], double=doubles[i], residual=residual))

    def forward(self, x):
        return self.stage(x)


# ======= Plain/Residual Network ============
class Network(nn.Module):
    def __init__(self, residual=False):
        super(Network, self).__init__()
        # input : (3, 224, 224) (ignore batch size here)
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels=3, out_channels=64, kernel_size=7, stride=2, padding=2),  # out : (64, 112, 112)
            nn.MaxPool2d(kernel_size=2, stride=2, padding=1),  # out : (64, 56, 56)
            nn.BatchNorm2d(num_features=64),
            nn.ReLU())
        self.stage1 = Stage(num_blocks=3, in_c=64, double=False, residual=residual)  # out : (64, 56, 56)
        self.stage2 = Stage(num_blocks=4, in_c=64, double=True, residual=residual)  # out : (128, 28, 28)
        self.stage3 = Stage(num_blocks=6, in_c=128, double=True, residual=residual)  # out : (256, 14, 14)
        self.stage4 = Stage(num_blocks=3, in_c=256, double=True, residual=residual)  # out : (512, 7, 7)
        self.avgpool = nn.AvgPool2d(kernel_size=7)  # out : (512, 1, 1)
        self.fc = nn.Linear(in_features=512, out_features=1000)  # out : (1000)

    def forward(self, x):
        N = x.shape[0]  # batch size
        x = self.stem(x)
        x = self.stage1(x)
        x = self.stage2(x)
        x = self.stage3(x)
        x = self.stage4(x)
        x = self.avgpool(x)
        x = self.fc(x.reshape(N, -1))
        return x
