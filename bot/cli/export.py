"""`downvote export`: one record per event, as JSON lines (for evals) or CSV (for people)."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TextIO

import typer

from bot.cli.common import load_settings, parse_day, transaction
from storage.states import Rating


class ExportFormat(StrEnum):
    jsonl = "jsonl"
    csv = "csv"


class RatingChoice(StrEnum):
    down = Rating.DOWN.value
    up = Rating.UP.value
    any = "any"


def jsonl_row(record: dict[str, Any]) -> dict[str, Any]:
    """The event plus eval-dataset keys: input, output, expected."""
    return {
        **record,
        "input": record["prompt"],
        "output": record["response"],
        "expected": record["correction"],
    }


def csv_row(record: dict[str, Any]) -> dict[str, Any]:
    """Flat cells: lists and objects as JSON text, categories separated by '; '."""
    row = dict(record)
    for key in ("prompt", "metrics", "metadata", "notes"):
        if not isinstance(row[key], str) and row[key] is not None:
            row[key] = json.dumps(row[key], ensure_ascii=False)
    row["categories"] = "; ".join(record["categories"])
    return row


def write_export(records: Iterator[dict[str, Any]], out: TextIO, fmt: ExportFormat) -> int:
    from storage.records import RECORD_FIELDS

    count = 0
    if fmt is ExportFormat.csv:
        writer = csv.DictWriter(out, fieldnames=RECORD_FIELDS)
        writer.writeheader()
        for record in records:
            writer.writerow(csv_row(record))
            count += 1
        return count
    for record in records:
        out.write(json.dumps(jsonl_row(record), ensure_ascii=False) + "\n")
        count += 1
    return count


def export(
    format: Annotated[ExportFormat, typer.Option("--format", help="Output format.")] = (
        ExportFormat.jsonl
    ),
    rating: Annotated[RatingChoice, typer.Option(help="Which ratings.")] = RatingChoice.any,
    category: Annotated[str | None, typer.Option(help="Only events with this category.")] = None,
    since: Annotated[
        str | None, typer.Option(help="From this date/time (UTC if no offset).")
    ] = None,
    until: Annotated[str | None, typer.Option(help="Before this date/time.")] = None,
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="File (default stdout).")
    ] = None,
) -> None:
    """One record per event: prompt, response, comment, categories, triage, notes."""
    from storage.records import EventFilter, event_record_dict, iter_events

    filters = EventFilter(
        rating=None if rating is RatingChoice.any else Rating(rating.value),
        category=category,
        since=parse_day(since, "--since"),
        until=parse_day(until, "--until"),
    )
    with transaction(load_settings()) as session:
        records = (event_record_dict(r) for r in iter_events(session, filters))
        if output is None:
            count = write_export(records, sys.stdout, format)
        else:
            with output.open("w", encoding="utf-8", newline="") as out:
                count = write_export(records, out, format)
    typer.echo(f"exported {count} events", err=True)
