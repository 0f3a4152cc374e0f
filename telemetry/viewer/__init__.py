"""The trace viewer: a self-contained web page over the local trace store, plus an OTLP receiver."""

from tandemlm.telemetry.viewer.server import ViewerServer

__all__ = ["ViewerServer"]
