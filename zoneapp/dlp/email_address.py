"""EMAIL: e-mail addresses."""

from __future__ import annotations

from zoneapp.dlp._base import Detector

__all__ = ["EmailDetector"]

# RFC 5322 atext, the characters a dot-atom local part is made of.
_LOCAL_CHAR = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"


class EmailDetector(Detector):
    """``local@domain.tld`` with a dotted domain and an alphabetic TLD of 2+ letters.

    The pattern starts at the ``@`` (a literal first character lets ``re`` jump
    from one ``@`` to the next) and only checks that a local-part character comes
    before it: a finding needs no more than that, and "@handle", "user@localhost"
    and "logo@2x.png" stay out.
    """

    name = "EMAIL"
    pattern = (
        "@"
        + f"(?<={_LOCAL_CHAR}@)"  # a local part ends right before the @
        + r"(?![0-9]+x\.)"  # not an image density suffix: icon@2x.png
        + rf"(?:{_LABEL}\.)+"
        + r"[A-Za-z]{2,63}(?![A-Za-z0-9-])"
    )
