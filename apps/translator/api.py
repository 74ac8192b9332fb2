"""HTTP routes. Constraint violations surface as 409/422 through Plinth's handlers."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Query
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from plinth import Limit, NotFound, Offset, PgText, ddl
from translator.db import DocumentReads, Session, TranslationReads
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
    documents: DocumentReads,
    session_id: Annotated[PgText | None, Query(max_length=255)] = None,
    user_id: uuid.UUID | None = None,
    limit: Limit = 20,
    offset: Offset = 0,
) -> list[DocumentOut]:
    owner: dict[str, Any] = {"session_id": session_id, "user_id": user_id}
    return await documents.list(
        order_by=["-created_at", "id"],
        limit=limit,
        offset=offset,
        into=DocumentOut,
        **{key: value for key, value in owner.items() if value is not None},
    )


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
async def get_document(document_id: uuid.UUID, documents: DocumentReads) -> DocumentOut:
    document = await documents.get(document_id, into=DocumentOut)
    if document is None:
        raise NotFound(f"document {document_id} not found")
    return document


@router.post("/documents/{document_id}/translations", status_code=201)
async def request_translation(
    document_id: uuid.UUID, body: TranslationIn, session: Session
) -> TranslationOut:
    translation = Translation(document_id=document_id, **body.model_dump())
    session.add(translation)
    await session.flush()
    return TranslationOut.model_validate(translation)


@router.get("/translations/{translation_id}")
async def get_translation(
    translation_id: uuid.UUID, translations: TranslationReads
) -> TranslationOut:
    translation = await translations.get(translation_id, into=TranslationOut)
    if translation is None:
        raise NotFound(f"translation {translation_id} not found")
    return translation


@router.patch("/translations/{translation_id}")
async def update_translation(
    translation_id: uuid.UUID, body: TranslationUpdate, session: Session
) -> TranslationOut:
    translation = await _get(session, Translation, translation_id)
    for field, value in body.model_dump(exclude_unset=True).items():
        setattr(translation, field, value)
    await session.flush()
    return TranslationOut.model_validate(translation)
