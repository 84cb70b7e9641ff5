"""The peer a user would pick: Presidio's pattern recognizers and anonymizer, in process.

Credit card, US SSN, IBAN, e-mail and phone recognizers (no NER model: a no-op
NLP engine, so no spaCy model is loaded) and the default anonymizer (replace with
``<ENTITY>``), on every string of the value (walked recursively; field names are not
scanned), the key and every header value of the same records the bench feeds the
workers. Timed in process, one core, no broker: a ceiling for what a Presidio-based
guard could forward.

The e-mail recognizer checks domains with tldextract; it is given the public-suffix
snapshot tldextract ships (no download), the same list it falls back to offline.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from typing import Any

__all__ = ["ENTITIES", "PresidioPeer"]

ENTITIES = ["CREDIT_CARD", "US_SSN", "IBAN_CODE", "EMAIL_ADDRESS", "PHONE_NUMBER"]
Record = tuple[bytes, bytes, list[tuple[str, bytes]]]


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


class PresidioPeer:
    def __init__(self) -> None:
        import tldextract
        from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
        from presidio_analyzer.nlp_engine import NlpArtifacts, NlpEngine
        from presidio_analyzer.predefined_recognizers import (
            CreditCardRecognizer,
            EmailRecognizer,
            IbanRecognizer,
            PhoneRecognizer,
            UsSsnRecognizer,
        )
        from presidio_anonymizer import AnonymizerEngine

        offline = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)

        class OfflineEmailRecognizer(EmailRecognizer):  # type: ignore[misc]
            def validate_result(self, pattern_text: str) -> bool:
                return bool(offline(pattern_text).fqdn)

        class NoNlpEngine(NlpEngine):  # type: ignore[misc]
            """Pattern recognizers need no NLP artifacts: empty ones, no model."""

            def load(self) -> None:
                pass

            def is_loaded(self) -> bool:
                return True

            def process_text(self, text: str, language: str) -> Any:
                none: Any = []
                return NlpArtifacts(none, none, none, none, self, language)

            def process_batch(  # type: ignore[override]
                self, texts: Any, language: str, *args: Any, **kwargs: Any
            ) -> Any:
                for text in texts:
                    yield text, self.process_text(text, language)

            def is_stopword(self, word: str, language: str) -> bool:
                return False

            def is_punct(self, word: str, language: str) -> bool:
                return False

            def get_supported_entities(self) -> list[str]:
                return []

            def get_supported_languages(self) -> list[str]:
                return ["en"]

        registry = RecognizerRegistry(
            recognizers=[
                CreditCardRecognizer(),
                UsSsnRecognizer(),
                IbanRecognizer(),
                OfflineEmailRecognizer(),
                PhoneRecognizer(),
            ]
        )
        self.analyzer: Any = AnalyzerEngine(
            registry=registry, nlp_engine=NoNlpEngine(), supported_languages=["en"]
        )
        self.anonymizer: Any = AnonymizerEngine()  # type: ignore[no-untyped-call]
        self.findings = 0

    def text(self, text: str) -> str:
        results = self.analyzer.analyze(text, language="en", entities=ENTITIES)
        if not results:
            return text
        self.findings += len(results)
        out: str = self.anonymizer.anonymize(text, results).text
        return out

    def record(self, key: bytes, value: bytes, headers: Sequence[tuple[str, bytes]]) -> None:
        for s in _strings(json.loads(value)):
            self.text(s)
        self.text(key.decode("utf-8", "replace"))
        for _, v in headers:
            self.text(v.decode("utf-8", "replace"))

    def records_per_s(self, records: Sequence[Record]) -> float:
        for r in records[:20]:  # warm the regex caches
            self.record(*r)
        started = time.perf_counter()
        for r in records:
            self.record(*r)
        return len(records) / (time.perf_counter() - started)
