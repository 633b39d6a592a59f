"""ftlab's version, in a module of its own: the package face (`ftlab/__init__.py`) lazily
imports the training API, so a module below it that needs the version imports it from here
rather than from the face above it."""

__version__ = "0.1.0"
