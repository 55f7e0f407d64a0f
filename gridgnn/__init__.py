"""gridgnn: convolutional networks as graph neural networks on grid graphs."""
from .convert import convert
from .errors import GridTypeError, GridValueError
from .geometry import ConvGeometry
from .graph import GridGraph, clear_graph_cache, graph_for, grid_graph, set_graph_cache_size, to_image, to_nodes
from .receptive_field import receptive_field
from .sparse import SparseGridGraph, sparse_grid_graph, to_dense, to_sparse
from .verification import verify

__version__ = "0.1.0"

__all__ = ["ConvGeometry", "GridGraph", "grid_graph", "graph_for", "to_nodes", "to_image", "convert", "verify",
           "receptive_field", "clear_graph_cache", "set_graph_cache_size", "SparseGridGraph", "sparse_grid_graph",
           "to_sparse", "to_dense", "GridValueError", "GridTypeError"]
