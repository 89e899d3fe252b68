"""Bulk I/O, per-record reporting: the pattern the three batch handlers share.

Each batch handler first works out every record's outcome in one bulk pass
(batched AWS calls), then lets Powertools' BatchProcessor report them: its
`record_handler` only replays the outcome computed for the record, so the
partial-batch response (and the whole-batch failure that triggers Lambda's
bisect) is Powertools' own.
"""

from __future__ import annotations

from typing import Any, Callable

from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    process_partial_response,
)


class BulkOutcomes:
    """Outcomes of the batch being handled, keyed by record id (None = done)."""

    def __init__(self, record_id: Callable[[Any], str], not_processed: Callable[[str], Exception]):
        self._record_id = record_id
        self._not_processed = not_processed
        self._outcomes: dict[str, Exception | None] = {}

    def record_handler(self, record: Any) -> None:
        outcome = self._outcomes.get(self._record_id(record), self._not_processed("record was not processed"))
        if outcome is not None:
            raise outcome

    def respond(self, event: dict[str, Any], context: Any, processor: BatchProcessor,
                outcomes: dict[str, Exception | None]) -> dict[str, Any]:
        """The partial-batch response for `outcomes`, computed by the bulk pass for this event."""
        self._outcomes = outcomes
        try:
            return process_partial_response(event=event, record_handler=self.record_handler, processor=processor,
                                            context=context)
        finally:
            self._outcomes = {}
