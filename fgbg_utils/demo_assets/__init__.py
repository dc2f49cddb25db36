"""Procedural demo assets: outdoor backgrounds with exact depth, and foreground objects with alpha.

They let the whole pipeline (dataset build, loaders, training, notebooks) run with no downloads.
Everything is deterministic from ``(seed, index)``: each asset draws from
``np.random.default_rng([seed, index, tag])`` with one constant tag per kind of asset.
`backgrounds` draws the scenes, `foregrounds` the objects, `sketch` the supersampled canvas both use.
"""

from .backgrounds import DemoBackground, make_demo_background
from .foregrounds import FOREGROUND_KINDS, DemoForeground, make_demo_foreground

__all__ = ["DemoBackground", "DemoForeground", "FOREGROUND_KINDS", "make_demo_background", "make_demo_foreground"]
