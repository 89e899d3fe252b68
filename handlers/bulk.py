"""One Powertools batch processor for the three batch handlers: the work is done for the whole batch at once.

Powertools' BatchProcessor calls a `record_handler` per record. These handlers batch their
AWS calls across the batch instead (BatchGetItem, TransactWriteItems, PublishBatch,
PutEvents), so `BulkBatchProcessor` runs one `bulk_handler(records)` for the batch, which
returns each record's outcome (None = done, an exception = failed and to be retried), and
reports them through Powertools' own success and failure bookkeeping: the partial-batch
response, and the whole-batch failure that makes Lambda bisect a stream batch, stay
Powertools' own.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse

#: record -> the id its outcome is keyed by (a stream sequence number, an SQS message id).
RecordId = Callable[[dict[str, Any]], str]
#: the batch's records -> outcome per record id (None = done; an exception = failed).
BulkHandler = Callable[[list[dict[str, Any]]], dict[str, Exception | None]]

RECORD_IDS: dict[EventType, RecordId] = {
    EventType.KinesisDataStreams: lambda record: record["kinesis"]["sequenceNumber"],
    EventType.DynamoDBStreams: lambda record: record["dynamodb"]["SequenceNumber"],
    EventType.SQS: lambda record: record["messageId"],
}


def _done_in_bulk(record: Any) -> None:
    """Never called: `BulkBatchProcessor.process` replaces the per-record loop."""
    raise AssertionError("per-record work is done in bulk")


class BulkBatchProcessor(BatchProcessor):
    def __init__(self, event_type: EventType, bulk_handler: BulkHandler, not_processed: type[Exception], **kwargs: Any):
        super().__init__(event_type=event_type, **kwargs)
        self._bulk_handler = bulk_handler
        self._record_id = RECORD_IDS[event_type]
        self._not_processed = not_processed

    def process(self) -> list[tuple]:
        records = list(self.records)
        outcomes = self._bulk_handler(records)
        missing = self._not_processed("record was not processed")
        return [self._report(record, outcomes.get(self._record_id(record), missing)) for record in records]

    def _report(self, record: dict[str, Any], outcome: Exception | None) -> tuple:
        data = self._to_batch_type(record=record, event_type=self.event_type, model=self.model)
        if outcome is None:
            return self.success_handler(record=data, result=None)
        try:
            raise outcome
        except Exception as exc:  # noqa: BLE001 -- reported with its traceback, as Powertools reports a raise
            return self.failure_handler(record=data, exception=(type(exc), exc, exc.__traceback__))

    def respond(self, event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
        """The partial-batch response for the event (Powertools' `process_partial_response`)."""
        return process_partial_response(event=event, record_handler=_done_in_bulk, processor=self, context=context)
