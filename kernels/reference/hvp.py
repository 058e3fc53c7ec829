"""Pure-torch twins of the Hessian-vector products in ``kernels/hvp.py``.

An MLP is a list of ``(weight (d_l, d_{l-1}), bias (d_l,))`` pairs, the activation between layers
and none after the last: z_l = a_{l-1} W_l^T + b_l, a_l = act(z_l), logits f = z_L, a_0 = x.

The flat parameter vector (length P) concatenates, layer by layer, ``W_l`` row-major and then
``b_l``: the order of ``torch.nn.utils.parameters_to_vector([W_1, b_1, W_2, b_2, ...])``.

Losses, averaged over the N samples: ``"ce"``: cross-entropy of the logits against integer labels
(N,); ``"mse"``: ``0.5 * ||f - y||^2`` against float targets (N, d_L).

The products are Pearlmutter's R-operator (forward-over-reverse) written out by hand, for k
vectors at once: an R-forward pass carries the directional derivatives Rz_l, Ra_l of every layer
(k, N, d_l), then an R-backward pass carries R(delta_l), and R(dL/dW_l) = R(delta_l)^T a_{l-1} +
delta_l^T Ra_{l-1}. Arithmetic is in the parameters' dtype. They validate nothing: the public
launchers in ``kernels/hvp.py`` do.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

ACTIVATIONS = ("tanh", "softplus", "relu")
LOSSES = ("ce", "mse")

Params = list[tuple[torch.Tensor, torch.Tensor]]


def activation_derivatives(
    z: torch.Tensor, activation: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """act(z), act'(z), act''(z). relu's second derivative is 0 (almost everywhere)."""
    if activation == "tanh":
        t = torch.tanh(z)
        d1 = 1 - t * t
        return t, d1, -2 * t * d1
    if activation == "softplus":
        s = torch.sigmoid(z)
        return F.softplus(z), s, s * (1 - s)
    step = (z > 0).to(z.dtype)
    return torch.relu(z), step, torch.zeros_like(z)


def flat_size(params: Params) -> int:
    return sum(w.numel() + b.numel() for w, b in params)


def split(v: torch.Tensor, params: Params) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(k, P) -> per layer (V_l (k, d_l, d_{l-1}), vb_l (k, d_l)), views of v."""
    out, at = [], 0
    for w, b in params:
        vw = v[:, at : at + w.numel()].reshape(v.shape[0], *w.shape)
        at += w.numel()
        out.append((vw, v[:, at : at + b.numel()]))
        at += b.numel()
    return out


def forward(params: Params, x: torch.Tensor, activation: str = "tanh"):
    """Logits (N, d_L) and the per-layer cache [(a_{l-1}, z_l, act'(z_l), act''(z_l))]."""
    cache, a = [], x
    for i, (w, b) in enumerate(params):
        z = a @ w.T + b
        last = i == len(params) - 1
        if last:
            cache.append((a, z, None, None))
        else:
            a_next, d1, d2 = activation_derivatives(z, activation)
            cache.append((a, z, d1, d2))
            a = a_next
    return cache[-1][1], cache


def loss_value(logits: torch.Tensor, y: torch.Tensor, loss: str) -> torch.Tensor:
    if loss == "ce":
        return F.cross_entropy(logits, y)
    return 0.5 * (logits - y).pow(2).sum(dim=1).mean()


def loss_grad_and_hessian_product(logits, y, r_logits, loss):
    """dL/df (N, d_L) and H_loss Rf (k, N, d_L), both with the 1/N of the mean."""
    n = logits.shape[0]
    if loss == "ce":
        p = torch.softmax(logits, dim=1)
        g = (p - F.one_hot(y, logits.shape[1]).to(p.dtype)) / n
        hr = (p * r_logits - p * (p * r_logits).sum(dim=-1, keepdim=True)) / n
        return g, hr
    return (logits - y) / n, r_logits / n


def mlp_hvp(
    params: Params,
    x: torch.Tensor,
    y: torch.Tensor,
    v: torch.Tensor,
    activation: str = "tanh",
    loss: str = "ce",
    gauss_newton: bool = False,
) -> torch.Tensor:
    """(k, P) products H v (or G v, the Gauss-Newton matrix, with ``gauss_newton``)."""
    vs = split(v, params)
    logits, cache = forward(params, x, activation)
    # R-forward: directional derivatives of every layer's pre-activation, (k, N, d_l)
    r_a = None
    r_z = []
    for (w, _), (vw, vb), (a, _z, d1, _d2) in zip(params, vs, cache, strict=True):
        rz = torch.matmul(a, vw.transpose(1, 2)) + vb[:, None, :]
        if r_a is not None:
            rz = rz + r_a @ w.T
        r_z.append(rz)
        r_a = d1 * rz if d1 is not None else None
    g, r_delta = loss_grad_and_hessian_product(logits, y, r_z[-1], loss)
    delta = g
    out = []
    for i in range(len(params) - 1, -1, -1):
        w, _ = params[i]
        a, _z, _, _ = cache[i]
        r_w = r_delta.transpose(1, 2) @ a
        if not gauss_newton and i > 0:
            r_a_prev = cache[i - 1][2] * r_z[i - 1]  # Ra_{i-1} = act'(z) Rz
            r_w = r_w + delta.T @ r_a_prev
        out.append((r_w.flatten(1), r_delta.sum(dim=1)))
        if i == 0:
            break
        _, _, d1, d2 = cache[i - 1]
        back = delta @ w  # dL/da_{i-1}
        r_back = r_delta @ w
        if not gauss_newton:
            r_back = r_back + delta @ vs[i][0]
        r_delta_prev = r_back * d1
        if not gauss_newton:
            r_delta_prev = r_delta_prev + back * d2 * r_z[i - 1]
        delta = back * d1
        r_delta = r_delta_prev
    return torch.cat([t for pair in reversed(out) for t in pair], dim=1)


def margin(params: Params, x: torch.Tensor, y: torch.Tensor, activation: str = "tanh"):
    """(N,) logit margin f_y - max_{j != y} f_j, and the runner-up class j (N,)."""
    logits, _ = forward(params, x, activation)
    others = logits.scatter(1, y[:, None], float("-inf"))
    j = others.argmax(dim=1)
    return logits.gather(1, y[:, None])[:, 0] - logits.gather(1, j[:, None])[:, 0], j


def input_hvp(
    params: Params,
    x: torch.Tensor,
    y: torch.Tensor,
    v: torch.Tensor,
    activation: str = "tanh",
) -> torch.Tensor:
    """(N, d_0): per sample, the Hessian of the logit margin f_y - f_j (j the runner-up at x,
    held fixed: the margin's smooth piece) with respect to the input, times v (N, d_0)."""
    logits, cache = forward(params, x, activation)
    _, j = margin(params, x, y, activation)
    # R-forward along v: Rz_l (N, d_l)
    r_z, r_a = [], v
    for (w, _), (_a, _z, d1, _d2) in zip(params, cache, strict=True):
        rz = r_a @ w.T
        r_z.append(rz)
        r_a = d1 * rz if d1 is not None else None
    # the margin is linear in the logits: delta_L = e_y - e_j, R(delta_L) = 0
    delta = F.one_hot(y, logits.shape[1]).to(x.dtype) - F.one_hot(j, logits.shape[1]).to(x.dtype)
    r_delta = torch.zeros_like(delta)
    for i in range(len(params) - 1, 0, -1):
        w = params[i][0]
        _, _, d1, d2 = cache[i - 1]
        back = delta @ w
        r_delta = (r_delta @ w) * d1 + back * d2 * r_z[i - 1]
        delta = back * d1
    return r_delta @ params[0][0]
