"""``runplane samples …``: the sample files of a server's regression suite."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table

from runplane.cli.client_options import (
    JsonOpt,
    LimitOpt,
    OffsetOpt,
    ServerOpt,
    WaitOpt,
    connect,
)
from runplane.cli.render import console, key_values, print_json, print_page, when

samples_app = typer.Typer(no_args_is_help=True, help="Sample files of a server's regression suite.")


class SampleState(StrEnum):
    """``active``: used by at least one active regression test."""

    ACTIVE = "active"
    INACTIVE = "inactive"


def _size(n: Any) -> str:
    value = float(n or 0)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return str(n)  # pragma: no cover


@samples_app.command("list")
def samples_list(
    status: Annotated[SampleState | None, typer.Option()] = None,
    name: Annotated[str | None, typer.Option(help="Substring of the name.")] = None,
    tag: Annotated[str | None, typer.Option()] = None,
    limit: LimitOpt = 50,
    offset: OffsetOpt = 0,
    server: ServerOpt = None,
    as_json: JsonOpt = False,
    wait: WaitOpt = False,
) -> None:
    """List the sample files."""
    with connect(server, wait) as client:
        page = client.list_samples(
            status=status.value if status else None, name=name, tag=tag, limit=limit, offset=offset
        )
    print_page(page, "sample", _samples_table, as_json=as_json)


def _samples_table(samples: list[Mapping[str, Any]]) -> Table:
    table = Table(box=box.SIMPLE)
    for column in ("ID", "NAME", "SIZE", "SHA256", "TAGS", "TESTS", "ACTIVE"):
        table.add_column(column, justify="right" if column in ("ID", "SIZE", "TESTS") else "left")
    for sample in samples:
        table.add_row(
            str(sample["sample_id"]),
            sample["name"],
            _size(sample["size_bytes"]),
            sample["sha256"][:12],
            ",".join(sample.get("tags", [])),
            str(sample.get("regression_test_count", 0)),
            "yes" if sample.get("active") else "no",
        )
    return table


@samples_app.command("show")
def samples_show(
    sample_id: Annotated[int, typer.Argument(min=1, help="Sample ID.", show_default=False)],
    server: ServerOpt = None,
    as_json: JsonOpt = False,
    wait: WaitOpt = False,
) -> None:
    """One sample file's fields and extra files."""
    with connect(server, wait) as client:
        sample = client.get_sample(sample_id)
    if as_json:
        print_json(sample)
        return
    _print_sample(sample)


def _print_sample(sample: Mapping[str, Any]) -> None:
    extras = [f"{e['name']} ({_size(e['size_bytes'])})" for e in sample.get("extra_files", [])]
    console().print(
        key_values(
            [
                ("sample", sample["sample_id"]),
                ("name", sample["name"]),
                ("size", f"{_size(sample['size_bytes'])} ({sample['size_bytes']} bytes)"),
                ("sha256", sample["sha256"]),
                ("tags", ", ".join(sample.get("tags", []))),
                ("notes", sample.get("notes")),
                ("created", when(sample.get("created_at"))),
                ("tests", sample.get("regression_test_count")),
                ("active", "yes" if sample.get("active") else "no"),
                ("extra files", ", ".join(extras)),
            ]
        )
    )


@samples_app.command("upload")
def samples_upload(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, readable=True, show_default=False)
    ],
    name: Annotated[str | None, typer.Option(help="Sample name (default: the file's).")] = None,
    tag: Annotated[list[str] | None, typer.Option(help="Tag, repeatable.")] = None,
    notes: Annotated[str | None, typer.Option()] = None,
    server: ServerOpt = None,
    as_json: JsonOpt = False,
    wait: WaitOpt = False,
) -> None:
    """Upload a sample file (streamed; the same bytes twice give one sample)."""
    with connect(server, wait) as client:
        sample, created = client.upload_sample(
            file, filename=name or file.name, tags=list(tag or []), notes=notes
        )
    if as_json:
        print_json(sample)
        return
    verb = "uploaded as" if created else "already stored as"
    typer.echo(f"{file.name}: {verb} sample {sample['sample_id']} (sha256 {sample['sha256']})")
