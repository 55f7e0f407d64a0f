"""Intersphinx inventories of Python, torch, PyTorch Geometric and networkx, written from the installed packages.

The docs cross-reference those projects (``:class:`torch.nn.Conv2d```, ``:class:`torch_geometric.data.Data```,
``:class:`networkx.DiGraph```). Their ``objects.inv`` files live on their sites; so that the build
needs no network, :func:`write` lists the public objects of the installed packages and writes
inventories in Sphinx's own format, with each project's URL scheme, so links go to the real pages.
"""
from __future__ import annotations

import builtins
import inspect
import pathlib
import zlib
from typing import Dict, Iterable, List, Tuple

Entry = Tuple[str, str, str]            # (name, "py:class" / "py:function" / ..., uri relative to the site)

SITES = {
    "python": "https://docs.python.org/3/",
    "torch": "https://docs.pytorch.org/docs/stable/",
    "torch_geometric": "https://pytorch-geometric.readthedocs.io/en/latest/",
    "networkx": "https://networkx.org/documentation/stable/",
}


def _role(obj) -> str:
    if inspect.isclass(obj):
        return "py:exception" if issubclass(obj, BaseException) else "py:class"
    return "py:function" if callable(obj) else "py:data"


def _public(module, names: Iterable[str] = None) -> List[Tuple[str, object]]:
    names = names if names is not None else getattr(module, "__all__", None) or dir(module)
    return [(n, getattr(module, n)) for n in names if not n.startswith("_") and hasattr(module, n)]


def _python() -> List[Entry]:
    out = []
    for name, obj in _public(builtins):
        if inspect.isclass(obj) and issubclass(obj, BaseException):
            out.append((name, "py:exception", f"library/exceptions.html#{name}"))
        elif inspect.isclass(obj) or callable(obj):
            out.append((name, _role(obj), f"library/functions.html#{name}"))
    out += [(c, "py:data", f"library/constants.html#{c}") for c in ("None", "True", "False", "Ellipsis")]
    import typing
    out += [(f"typing.{n}", "py:data", f"library/typing.html#typing.{n}") for n, _ in _public(typing)]
    import collections.abc
    out += [(f"collections.abc.{n}", "py:class", f"library/collections.abc.html#collections.abc.{n}")
            for n, _ in _public(collections.abc)]
    import contextlib
    out += [(f"contextlib.{n}", _role(o), f"library/contextlib.html#contextlib.{n}") for n, o in _public(contextlib)]
    return out


def _torch() -> List[Entry]:
    import torch
    import torch.autograd
    import torch.func
    import torch.fx
    import torch.nn.functional
    import torch.utils.data
    out = []
    for module in (torch.nn, torch.nn.functional, torch.func, torch.nn.init, torch.nn.utils):
        for name, obj in _public(module):
            full = f"{module.__name__}.{name}"
            out.append((full, _role(obj), f"generated/{full}.html#{full}"))
            if inspect.isclass(obj) and obj.__module__ != module.__name__:       # where it is defined, too
                out.append((f"{obj.__module__}.{name}", _role(obj), f"generated/{full}.html#{full}"))
    for name, obj in _public(torch, [n for n in dir(torch) if not n.startswith("_")]):
        if inspect.isfunction(obj) or inspect.isbuiltin(obj):
            out.append((f"torch.{name}", "py:function", f"generated/torch.{name}.html#torch.{name}"))
    out += [("torch.Tensor", "py:class", "tensors.html#torch.Tensor"),
            ("torch.Size", "py:class", "size.html#torch.Size"),
            ("torch.autograd.Function", "py:class", "autograd.html#torch.autograd.Function"),
            ("torch.autograd.gradcheck", "py:function", "generated/torch.autograd.gradcheck.gradcheck.html"),
            ("torch.fx.GraphModule", "py:class", "fx.html#torch.fx.GraphModule"),
            ("torch.utils.data.DataLoader", "py:class", "data.html#torch.utils.data.DataLoader"),
            ("torch.utils.data.TensorDataset", "py:class", "data.html#torch.utils.data.TensorDataset"),
            ("torch.utils.benchmark.Timer", "py:class", "benchmark_utils.html#torch.utils.benchmark.Timer"),
            ("torch.compile", "py:function", "generated/torch.compile.html#torch.compile"),
            ("torch.autocast", "py:class", "amp.html#torch.autocast")]
    out += [(f"torch.{n}", "py:class", f"tensor_attributes.html#torch.{n}")
            for n in ("dtype", "device", "memory_format", "layout")]
    return out


def _torch_geometric() -> List[Entry]:
    import torch_geometric.data
    import torch_geometric.nn
    import torch_geometric.nn.conv
    import torch_geometric.utils
    out = []
    for name, obj in _public(torch_geometric.data):
        full = f"torch_geometric.data.{name}"
        out.append((full, _role(obj), f"generated/{full}.html#{full}"))
    for name, obj in _public(torch_geometric.nn.conv):
        full = f"torch_geometric.nn.conv.{name}"
        out += [(full, _role(obj), f"generated/{full}.html#{full}"),
                (f"torch_geometric.nn.{name}", _role(obj), f"generated/{full}.html#{full}"),
                (f"{getattr(obj, '__module__', full)}.{name}", _role(obj), f"generated/{full}.html#{full}")]
    for name, obj in _public(torch_geometric.utils):
        full = f"torch_geometric.utils.{name}"
        out.append((full, _role(obj), f"modules/utils.html#{full}"))
    return out


def _networkx() -> List[Entry]:
    import networkx
    out = []
    for name, obj in _public(networkx, [n for n in dir(networkx) if not n.startswith("_")]):
        if inspect.isclass(obj) and name in ("Graph", "DiGraph", "MultiGraph", "MultiDiGraph"):
            out.append((f"networkx.{name}", "py:class", f"reference/classes/{name.lower()}.html#networkx.{name}"))
        elif inspect.isfunction(obj):
            path = f"{obj.__module__}.{name}"
            out.append((f"networkx.{name}", "py:function", f"reference/generated/{path}.html#{path}"))
    return out


def _dump(path: pathlib.Path, project: str, entries: Iterable[Entry]) -> None:
    lines = sorted({f"{name} {role} 1 {uri} -\n" for name, role, uri in entries})
    header = f"# Sphinx inventory version 2\n# Project: {project}\n# Version: installed\n" \
             "# The remainder of this file is compressed using zlib.\n"
    path.write_bytes(header.encode() + zlib.compress("".join(lines).encode()))


def write(folder: pathlib.Path) -> Dict[str, Tuple[str, str]]:
    """Write the four inventories into ``folder``; returns Sphinx's ``intersphinx_mapping`` for them."""
    folder.mkdir(parents=True, exist_ok=True)
    mapping = {}
    for project, build in (("python", _python), ("torch", _torch), ("torch_geometric", _torch_geometric),
                           ("networkx", _networkx)):
        path = folder / f"{project}.inv"
        _dump(path, project, build())
        mapping[project] = (SITES[project], str(path))
    return mapping
