"""Baseline writes made by an approval (the suite's CRUD lives in ``store.suite``)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from runplane.store.models import OutputVariant, RegressionOutput


async def accepted_hashes(session: AsyncSession, output_id: int) -> set[str]:
    """The baseline and every variant hash of an output."""
    output = await session.get(RegressionOutput, output_id)
    hashes = set(
        (
            await session.scalars(
                select(OutputVariant.sha256).where(OutputVariant.output_id == output_id)
            )
        ).all()
    )
    if output is not None and output.expected_hash:
        hashes.add(output.expected_hash)
    return hashes


async def add_variant(session: AsyncSession, output_id: int, sha256: str) -> None:
    session.add(OutputVariant(output_id=output_id, sha256=sha256))
    await session.flush()
