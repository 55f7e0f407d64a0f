"""Builds gridgnn's native conv kernels with the package; the metadata is in setup.cfg.

The kernels are plain C files built into one library and loaded by ctypes (``gridgnn/nn/_native.py``):
it needs no torch or Python headers at build time, only a C compiler with OpenMP. It is optional: where
it does not build, the install still succeeds and gridgnn runs its pure-torch kernels (with a warning).
"""
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class build_c_library(build_ext):
    """``build_ext`` for a C library without a Python module init (ctypes loads it)."""

    def get_export_symbols(self, ext):
        return ext.export_symbols


openmp = [] if sys.platform in ("darwin", "win32") else ["-fopenmp"]
setup(
    ext_modules=[Extension(
        "gridgnn.nn._native_kernels", sources=["gridgnn/nn/_native_grouped.c", "gridgnn/nn/_native_dense.c"],
        depends=["gridgnn/nn/_native_transpose.h", "gridgnn/nn/_native_planes.h", "gridgnn/nn/_native_rows.h"],
        extra_compile_args=["-O3", "-std=gnu11", *openmp] if sys.platform != "win32" else ["/O2"],
        extra_link_args=openmp, optional=True)],
    cmdclass={"build_ext": build_c_library},
)
