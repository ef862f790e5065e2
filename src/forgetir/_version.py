"""The package version, in a module with no imports (the package root imports the API)."""

__version__ = "0.1.0"
