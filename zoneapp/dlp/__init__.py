"""DLP scanner: checks every output record for sensitive values before it leaves a zone.

Modelled on Presidio: a detector is candidate patterns plus checksum and exclusion
hooks, and findings name only the field path and the detector, never the value.
Texts are scanned in a normalized view and in decoded views (:mod:`.views`), on a
multi-pattern engine (:mod:`.engine`).
"""

from zoneapp.dlp._base import CustomDetector, Detector, Finding
from zoneapp.dlp.engine import available_engines
from zoneapp.dlp.phone import DEFAULT_REGIONS
from zoneapp.dlp.scanner import BUILTIN_DETECTORS, DECODE_LIMIT, Scanner, build_scanner
from zoneapp.dlp.views import Limits, joined_views

__all__ = [
    "BUILTIN_DETECTORS",
    "DECODE_LIMIT",
    "DEFAULT_REGIONS",
    "CustomDetector",
    "Detector",
    "Finding",
    "Limits",
    "Scanner",
    "available_engines",
    "build_scanner",
    "joined_views",
]
