"""The zoneapp benchmark: ``python -m bench`` (or ``make bench``)."""
