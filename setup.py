"""The one thing pyproject.toml cannot say on setuptools 61: orchestra's optional C extension.

orchestra._cclean is ansi.strip() and transcript.json_string() in C (see orchestra/_cclean.c). It is
optional: where it cannot be built (no C compiler, no Python headers), pip installs orchestra without it
and ansi.py's and transcript.py's own Python do the same work, more slowly.
"""
from setuptools import Extension, setup

setup(ext_modules=[Extension("orchestra._cclean", ["orchestra/_cclean.c"], optional=True)])
