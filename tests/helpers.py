"""Independent references used by the tests (never the code under test)."""
import torch
from torch import nn

TORCH_CONVS = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}


def conv_adjacency(conv_kwargs, size, dtype=torch.float64):
    """Per-offset adjacency A[t, i, j] = d y_i / d x_j of a 1->1 channel torch conv, measured by autograd.

    With the weight one-hot at offset t: how often output i reads input j through offset t
    (padding copies included), through torch's own conv.
    """
    nd = len(size)
    conv = TORCH_CONVS[nd](1, 1, bias=False, **conv_kwargs).to(dtype)
    num_k = conv.weight[0, 0].numel()
    mats = []
    for t in range(num_k):
        with torch.no_grad():
            conv.weight.zero_()
            conv.weight.view(-1)[t] = 1.0
        jac = torch.autograd.functional.jacobian(lambda x: conv(x[None, None]).flatten(),
                                                 torch.zeros(size, dtype=dtype))
        mats.append(jac.reshape(jac.shape[0], -1))  # [N_out, N_in]
    return torch.stack(mats)  # [K, N_out, N_in]


def graph_adjacency(edge_index, edge_type, num_offsets, num_dst, num_src, dtype=torch.float64):
    """Dense per-offset adjacency counts from a typed edge list."""
    adj = torch.zeros(num_offsets, num_dst, num_src, dtype=dtype)
    ones = torch.ones(edge_type.numel(), dtype=dtype)
    adj.index_put_((edge_type.cpu(), edge_index[1].cpu(), edge_index[0].cpu()), ones, accumulate=True)
    return adj


def dense_typed_conv(x, adjacency, weight, bias, groups):
    """Y = b + sum_t A_t X W_t^T with W_t block-diagonal over groups: a dense reference for typed graphs."""
    c_out, c_in_g = weight.shape[:2]
    w = weight.reshape(c_out, c_in_g, -1)
    full = torch.zeros(c_out, c_in_g * groups, w.shape[-1], dtype=w.dtype, device=w.device)
    og = c_out // groups
    for g in range(groups):
        full[g * og:(g + 1) * og, g * c_in_g:(g + 1) * c_in_g] = w[g * og:(g + 1) * og]
    out = sum(adjacency[t].to(x) @ x @ full[..., t].T for t in range(w.shape[-1]))
    return out if bias is None else out + bias


def assert_gradients_of_two_orders(layer, size, batch=2, **gradcheck_options):
    """``gradcheck`` and ``gradgradcheck`` of a float64 layer in its input, weight and bias."""
    layer = layer.double()
    x = torch.randn(batch, layer.in_channels, *size, dtype=torch.float64, requires_grad=True)
    params = dict(layer.named_parameters())

    def fn(x, weight, bias):
        return torch.func.functional_call(layer, {"weight": weight, "bias": bias}, (x,))

    inputs = (x, params["weight"].detach().requires_grad_(), params["bias"].detach().requires_grad_())
    assert torch.autograd.gradcheck(fn, inputs, **gradcheck_options)
    assert torch.autograd.gradgradcheck(fn, inputs)
