"""The ideas behind 1x1 convolution as measurable functions.

* counts: :func:`conv_params`, :func:`conv_macs`, :func:`count_params`, :func:`count_macs`,
  :func:`layer_table` and the classic figures (bottleneck, separable, Inception reduce,
  inverted residual, compound scaling);
* :func:`low_rank`: SVD compression of pointwise layers;
* gradient flow: :func:`backward_singular_values`, :func:`channel_gradient_norms`;
* :func:`fft_conv`: the convolution theorem, zero (linear) and circular (torus) padding;
* Network-in-Network: :func:`xor_linear_mse`, :func:`xor_mlp_train`, :func:`collapse_block`;
* :func:`mahalanobis_score`: OOD scores on node activations;
* :func:`edge_detection_demo`: a 1x1 map cannot see an edge, a 3x3 one can.
"""
from .counts import (
                     bottleneck_params,
                     compound_scaling,
                     conv_macs,
                     conv_params,
                     count_macs,
                     count_params,
                     inception_reduce_params,
                     inverted_residual_macs,
                     layer_counts,
                     layer_table,
                     separable_macs,
)
from .edges import edge_detection_demo, step_image
from .fft import fft_conv, fft_vs_direct_timing
from .gradflow import SeparableStack, backward_singular_values, channel_gradient_norms
from .lowrank import low_rank, low_rank_curve
from .nin import XOR_INPUTS, XOR_TARGETS, collapse_block, xor_linear_mse, xor_mlp_exact, xor_mlp_train
from .ood import MahalanobisScorer, mahalanobis_score, node_activations

__all__ = ["conv_params", "conv_macs", "count_params", "count_macs", "layer_counts", "layer_table",
           "bottleneck_params", "separable_macs", "inception_reduce_params", "inverted_residual_macs",
           "compound_scaling", "low_rank", "low_rank_curve", "backward_singular_values", "SeparableStack",
           "channel_gradient_norms", "fft_conv", "fft_vs_direct_timing", "XOR_INPUTS", "XOR_TARGETS",
           "xor_linear_mse", "xor_mlp_exact", "xor_mlp_train", "collapse_block", "MahalanobisScorer",
           "mahalanobis_score", "node_activations", "edge_detection_demo", "step_image"]
