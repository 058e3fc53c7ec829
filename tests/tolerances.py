"""The one tolerance table every kernel-against-reference comparison uses.

Kernels compute in fp32 whatever the storage dtype, so differences come from summation order in
reductions (fp32 rows) and from the final rounding to the storage dtype (one ulp, fp16/bf16).
"""

import torch

TOLERANCES = {
    torch.float32: {"atol": 1e-5, "rtol": 1e-5},
    torch.float16: {"atol": 1e-3, "rtol": 1e-3},
    torch.bfloat16: {"atol": 1e-2, "rtol": 1e-2},
}
# per-sample reductions (norms) are always fp32, whatever the data's dtype
REDUCTION = {"atol": 1e-5, "rtol": 1e-5}
