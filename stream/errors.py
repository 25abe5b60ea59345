"""Errors of the stream package: what went wrong and what to do about it."""

from __future__ import annotations

from schemas.errors import TextrouteError
from schemas.events import DeadLetterReason


class StreamError(TextrouteError):
    """Base class of every error the stream package raises on purpose."""


class StreamConfigError(StreamError):
    """Worker, broker or topic settings are missing, out of range or contradict each other."""


class ModelSlotError(StreamConfigError):
    """A model directory holds an artifact of a task its slot cannot use (e.g. an NER model
    where the classifier belongs); the worker refuses it at start and at reload."""


class PipelineConfigError(StreamConfigError):
    """The pipelines file is invalid, names a model it does not define, points a slot at a
    missing or unfitting artifact, or its rules do not cover its classifier's labels."""


class RulesError(StreamError):
    """The routing rules cannot be used; the worker refuses to start with them."""


class RulesFileNotFoundError(RulesError):
    """The routing rules file does not exist."""


class RulesInvalidError(RulesError):
    """The routing rules file is not valid YAML, breaks the schema, or names unknown labels."""


class BrokerError(StreamError):
    """The embedded broker or a Kafka connection cannot be used."""


class BrokerBinaryNotFoundError(BrokerError):
    """No tansu binary was found for the embedded broker."""


class BrokerStartError(BrokerError):
    """The embedded broker exited or did not accept connections in time."""


class BrokerUnavailableError(BrokerError):
    """No Kafka broker answered at the configured bootstrap address."""


class InputFileError(StreamError):
    """A file of messages given to `textroute produce` cannot be read."""


class FieldMappingError(InputFileError):
    """The options mapping a file's columns onto a kind's fields are malformed, name an
    unknown field or column, or leave a required field with neither a column nor a value."""


class BatchingError(StreamError):
    """Cross-request micro-batching (stream.batching) could not deliver a result."""


class BatcherClosedError(BatchingError):
    """Work arrived after the micro-batcher was closed, i.e. while the server shuts down."""


class BatchSizeMismatchError(BatchingError):
    """A batch function returned a different number of results than it was given items."""


class RecordRejectedError(StreamError):
    """One inbound record failed a check before inference; it goes to the dead-letter topic."""

    def __init__(
        self, reason: DeadLetterReason, message: str, *, message_id: str | None = None
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.message_id = message_id


class DeliveryFailedError(StreamError):
    """The broker did not acknowledge a batch's outputs; the worker stops, nothing past the
    last delivered batch committed, and its supervisor restarts it."""


class BatchQueueFullError(BatchingError):
    """More items wait for a model than the batcher's bound allows; the caller should retry."""


class ReviewStoreError(StreamError):
    """The review store's SQLite file is missing, unreadable or of another layout version."""


class FeedbackFileError(InputFileError):
    """A file of reviewers' feedback given to `textroute feedback send` has a malformed row;
    nothing of it is sent."""
