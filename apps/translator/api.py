"""HTTP routes. Constraint violations surface as 409/422 through Plinth's handlers."""

from __future__ import annotations

import uuid
from typing import Annotated, TypeVar

from fastapi import APIRouter, Query
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from plinth import Limit, NotFound, Offset, PgText, ddl
from translator.db import Session
from translator.models import Document, Translation
from translator.schemas import (
    DocumentIn,
    DocumentOut,
    TranslationIn,
    TranslationOut,
    TranslationUpdate,
)

router = APIRouter()
Row = TypeVar("Row", Document, Translation)


async def _get(session: AsyncSession, model: type[Row], id: uuid.UUID) -> Row:
    row = await session.get(model, id)
    if row is None:
        raise NotFound(f"{model.__tablename__[:-1]} {id} not found")
    return row


@router.post("/documents", status_code=201)
async def create_document(body: DocumentIn, session: Session) -> DocumentOut:
    document = Document(**body.model_dump())
    session.add(document)
    await session.flush()
    return DocumentOut.model_validate(document)


@router.get("/documents")
async def list_documents(
    session: Session,
    session_id: Annotated[PgText | None, Query(max_length=255)] = None,
    user_id: uuid.UUID | None = None,
    limit: Limit = 20,
    offset: Offset = 0,
) -> list[DocumentOut]:
    query = select(Document).order_by(Document.created_at.desc(), Document.id)
    if session_id is not None:
        query = query.where(Document.session_id == session_id)
    if user_id is not None:
        query = query.where(Document.user_id == user_id)
    rows = await session.scalars(query.limit(limit).offset(offset))
    return [DocumentOut.model_validate(row) for row in rows]


@router.get("/documents/search")
async def search_documents(
    session: Session, q: Annotated[PgText, Query(min_length=1, max_length=1000)], limit: Limit = 20
) -> list[DocumentOut]:
    query = (
        select(Document)
        .where(ddl.fulltext_match(Document.content, q))
        .order_by(Document.created_at.desc())
        .limit(limit)
    )
    return [DocumentOut.model_validate(row) for row in await session.scalars(query)]


@router.get("/documents/{document_id}")
async def get_document(document_id: uuid.UUID, session: Session) -> DocumentOut:
    return DocumentOut.model_validate(await _get(session, Document, document_id))


@router.post("/documents/{document_id}/translations", status_code=201)
async def request_translation(
    document_id: uuid.UUID, body: TranslationIn, session: Session
) -> TranslationOut:
    translation = Translation(document_id=document_id, **body.model_dump())
    session.add(translation)
    await session.flush()
    return TranslationOut.model_validate(translation)


@router.get("/translations/{translation_id}")
async def get_translation(translation_id: uuid.UUID, session: Session) -> TranslationOut:
    return TranslationOut.model_validate(await _get(session, Translation, translation_id))


@router.patch("/translations/{translation_id}")
async def update_translation(
    translation_id: uuid.UUID, body: TranslationUpdate, session: Session
) -> TranslationOut:
    translation = await _get(session, Translation, translation_id)
    for field, value in body.model_dump(exclude_unset=True).items():
        setattr(translation, field, value)
    await session.flush()
    return TranslationOut.model_validate(translation)
