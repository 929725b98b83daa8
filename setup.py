"""Build glue for the optional C accelerator; everything else is in pyproject.toml."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        # optional: without a compiler the wheel still builds and the pure-Python encoder is used
        Extension("exporter._native", ["exporter/_native.c"], optional=True, extra_compile_args=["-O2"]),
    ]
)
