"""fgbg kit: build, load, train on and inspect the fg/bg mask + depth dataset."""

__version__ = "0.1.0"
