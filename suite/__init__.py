"""hdbench's asv benchmark suite (asv's ``benchmark_dir``): kernel speed and memory, and science.

Nothing here may touch CUDA at import time: asv's forkserver imports the suite once and forks a
child per benchmark, and a CUDA context created before the fork is unusable in the children.
"""

import os

# torch.cuda.is_available() asks NVML instead of initialising the CUDA driver, so even an early
# availability check leaves forked children able to create their own context.
os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")
