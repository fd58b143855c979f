"""asrkit: a config-driven toolkit for end-to-end speech recognition."""

__version__ = "0.1.0"
