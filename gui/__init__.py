"""The PySide6 editor (issue 4). It talks to the engine only through the `nodegraph` API."""
