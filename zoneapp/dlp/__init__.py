"""DLP scanner: checks every output record for sensitive values before it leaves a zone.

Modelled on Presidio: a detector is a candidate regex plus a checksum hook, and
findings name only the field path and the detector, never the value.
"""

from zoneapp.dlp._base import CustomDetector, Detector, Finding
from zoneapp.dlp.scanner import BUILTIN_DETECTORS, Scanner, build_scanner

__all__ = [
    "BUILTIN_DETECTORS",
    "CustomDetector",
    "Detector",
    "Finding",
    "Scanner",
    "build_scanner",
]
