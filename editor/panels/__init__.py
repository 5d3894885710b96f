"""Dockable panels. Views only: they show what controllers give them and emit what the user asks for."""
