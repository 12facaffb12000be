"""ListenBrainz: reading listening-history exports."""

from haunt_fm.clients.listenbrainz.export import (
    DEFAULT_CHUNK_SIZE,
    JSON_CONTENT_TYPES,
    JSONL_CONTENT_TYPES,
    ExportFormat,
    ExportReader,
    Listen,
    ReadCounts,
    ReadProblem,
    format_for_content_type,
    storable_text,
    to_listen,
)

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "JSONL_CONTENT_TYPES",
    "JSON_CONTENT_TYPES",
    "ExportFormat",
    "ExportReader",
    "Listen",
    "ReadCounts",
    "ReadProblem",
    "format_for_content_type",
    "storable_text",
    "to_listen",
]
