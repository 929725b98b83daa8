"""Build glue for the optional C accelerator; everything else is in pyproject.toml."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        # optional: without a compiler (or libcrypto's headers) the wheel still builds and the pure-Python
        # paths are used; redaction hashes with libcrypto (Debian: libssl-dev)
        Extension(
            "exporter._native",
            ["exporter/_native.c"],
            optional=True,
            extra_compile_args=["-O2"],
            libraries=["crypto"],
        ),
    ]
)
