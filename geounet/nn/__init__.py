"""Neural-network modules: blocks, encoders, decoders and the U-Net."""

from geounet.nn.blocks import OperatorFactory, ResidualBlock, ResidualBranch
from geounet.nn.decoder import Bottleneck, ResidualDecoder
from geounet.nn.encoder import IdentityEncoder, MultiResolutionEncoder, ResidualEncoder
from geounet.nn.equivariant_conv import EquivariantConv, EquivariantFactory
from geounet.nn.healpix_face import FaceKernelConv, HealpixConv3x3
from geounet.nn.message_passing import KernelConv, MessagePassingFactory
from geounet.nn.norm import NodeGroupNorm
from geounet.nn.square import SquareConv, SquareConvFactory
from geounet.nn.unet import UNet

__all__ = [
    "Bottleneck",
    "EquivariantConv",
    "EquivariantFactory",
    "FaceKernelConv",
    "HealpixConv3x3",
    "IdentityEncoder",
    "KernelConv",
    "MessagePassingFactory",
    "MultiResolutionEncoder",
    "NodeGroupNorm",
    "OperatorFactory",
    "ResidualBlock",
    "ResidualBranch",
    "ResidualDecoder",
    "ResidualEncoder",
    "SquareConv",
    "SquareConvFactory",
    "UNet",
]
