"""CPU time of one training step of the main job's U-Net at nside 32, batch 8, on both HEALPix paths.

The main job's Multi-ResNet (4 levels, ``channel_mult [1, 2, 4]``) with message passing on NEST
and on face images (FaceKernelConv, eager: the same sparse product on the renumbered graph),
and with the dense 3 x 3 convolution on face images at widths 16, 12 (the message-passing
model's parameter count), 10 and 8, and the main job's model (``shallow_water_face``: face
conv3x3 at width 12 with the latitude as a fourth input channel). One step = forward,
squared-sum loss, backward; process CPU time of one thread, 2 steps per round, interleaved
rounds (4 unless ``--rounds``), median (min-max) of all but the first.

    OMP_NUM_THREADS=1 PYTHONPATH=$PWD python experiments/face_path/main_job_step_cost.py
"""

import argparse
import statistics
import time

import torch

from geounet.hierarchy import HealpixHaarHierarchy
from geounet.hierarchy.healpix_face import HealpixFaceHierarchy
from geounet.models.unet import build_unet

torch.set_num_threads(1)


def make(h, op, w, mult, inputs):
    torch.manual_seed(0)
    return build_unet(h, inputs, 3, width=w, channel_mult=mult, operator=op)


parser = argparse.ArgumentParser()
parser.add_argument("--rounds", type=int, default=4)
rounds = parser.parse_args().rounds
hn, hf = HealpixHaarHierarchy(32, 4), HealpixFaceHierarchy(32, 4)
variants = {  # hierarchy, operator, width, channel_mult, input channels
    "nest_mp_w16": (hn, "message_passing", 16, [1, 2, 4], 3),
    "face_mp_w16": (hf, "message_passing", 16, [1, 2, 4], 3),
    "face_c3_w16": (hf, "conv3x3", 16, [1, 2, 4], 3),
    "face_c3_w12": (hf, "conv3x3", 12, [1, 2, 4], 3),
    "face_c3_w12_latitude": (hf, "conv3x3", 12, [1, 2, 4], 4),
    "face_c3_w10": (hf, "conv3x3", 10, [1, 2, 4], 3),
    "face_c3_w8": (hf, "conv3x3", 8, [1, 2, 4], 3),
}
models = {k: (make(*v), v[0], torch.randn(8, 12 * 32 * 32, v[4])) for k, v in variants.items()}
for k, (m, _, _) in models.items():
    print(k, sum(p.numel() for p in m.parameters()))
times = {k: [] for k in models}
for _ in range(rounds):
    for k, (m, h, x) in models.items():
        t = time.process_time()
        for _ in range(2):
            m(x, h).square().sum().backward()
        times[k].append((time.process_time() - t) / 2)
for k, v in times.items():
    print(k, f"{statistics.median(v[1:]):.3f}", f"{min(v[1:]):.3f}-{max(v[1:]):.3f}")
