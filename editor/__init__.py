"""GAN Editor: the PySide6 desktop application (document model, job runner, canvas, panels, controllers)."""

__version__ = "0.1.0"
