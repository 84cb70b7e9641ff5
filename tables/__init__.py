"""Faust tables (installed as ``zoneapp.tables``)."""
