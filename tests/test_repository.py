"""`plinth.Repository` on a small schema of its own, on asyncpg and psycopg.

The schema is built with ``create_all`` in a database of its own (created
once per run); each test runs in a transaction that is rolled back.
"""

from __future__ import annotations

import datetime
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import Depends, FastAPI
from sqlalchemy import (
    URL,
    BigInteger,
    CheckConstraint,
    Date,
    ForeignKey,
    Identity,
    Integer,
    String,
    event,
    func,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import InvalidRequestError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, selectinload

from plinth import (
    ConfigurationError,
    Conflict,
    ConstraintViolation,
    DataError,
    InvalidValue,
    NotFound,
    Page,
    Repository,
    ddl,
    exception_handlers,
)
from plinth.repository.pagination import OrderBy
from plinth.testing import create_database, drop_database


class Base(DeclarativeBase):
    metadata = ddl.new_metadata()


class Author(ddl.Timestamps, Base):
    __tablename__ = "authors"
    __table_args__ = (CheckConstraint("rank >= 0", name="rank_positive"),)

    id: Mapped[uuid.UUID] = ddl.uuid_pk()
    email: Mapped[str] = mapped_column(String(100), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    rank: Mapped[int] = mapped_column(Integer, server_default="0")
    tags: Mapped[list[str]] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    kind: Mapped[str] = mapped_column(String(20), default="human")
    nickname: Mapped[str | None] = mapped_column(String(50))

    books: Mapped[list[Book]] = relationship(
        back_populates="author", lazy="raise", passive_deletes=True
    )


class Book(Base):
    __tablename__ = "books"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    author_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("authors.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(200))
    published: Mapped[datetime.date] = mapped_column(Date, server_default=func.current_date())
    code: Mapped[str] = mapped_column(String(40), default=lambda: uuid.uuid4().hex)

    author: Mapped[Author] = relationship(back_populates="books", lazy="raise")


class Shelf(Base):
    """A composite primary key."""

    __tablename__ = "shelves"

    room: Mapped[str] = mapped_column(String(20), primary_key=True)
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    label: Mapped[str] = mapped_column(String(50))


ddl.updated_at_trigger(Author.__table__)  # type: ignore[arg-type]


class Authors(Repository[Author]):
    async def get_by_email(self, email: str) -> Author | None:
        return await self.first(email=email)


class Books(Repository[Book]):
    pass


class Shelves(Repository[Shelf]):
    pass


# -- fixtures ---------------------------------------------------------------


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def repo_url(plinth_server: URL) -> AsyncIterator[URL]:
    name = f"plinth_test_repository_{os.getpid()}"
    url = await create_database(plinth_server, name)
    engine = create_async_engine(url)
    async with engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
    await engine.dispose()
    try:
        yield url
    finally:
        await drop_database(plinth_server, name)


_engines: dict[str, AsyncEngine] = {}


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def engines(repo_url: URL) -> AsyncIterator[dict[str, AsyncEngine]]:
    _engines["asyncpg"] = create_async_engine(repo_url, pool_size=2)
    _engines["psycopg"] = create_async_engine(
        repo_url.set(drivername="postgresql+psycopg"), pool_size=2
    )
    yield _engines
    for engine in _engines.values():
        await engine.dispose()


@pytest_asyncio.fixture(loop_scope="session", params=["asyncpg", "psycopg"])
async def session(
    request: pytest.FixtureRequest, engines: dict[str, AsyncEngine]
) -> AsyncIterator[AsyncSession]:
    """A session in a transaction rolled back after the test, on each driver."""
    async with engines[request.param].connect() as connection:
        transaction = await connection.begin()
        async with AsyncSession(
            bind=connection, expire_on_commit=False, join_transaction_mode="create_savepoint"
        ) as session:
            yield session
        await transaction.rollback()


@pytest_asyncio.fixture(loop_scope="session")
async def asyncpg_session(engines: dict[str, AsyncEngine]) -> AsyncIterator[AsyncSession]:
    async with engines["asyncpg"].connect() as connection:
        transaction = await connection.begin()
        async with AsyncSession(bind=connection, expire_on_commit=False) as session:
            yield session
        await transaction.rollback()


@contextmanager
def statements(session: AsyncSession) -> Iterator[list[str]]:
    """Collect the SQL statements `session`'s engine sends while the block runs."""
    seen: list[str] = []
    engine = session.bind.engine.sync_engine  # type: ignore[union-attr]

    def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        # Savepoints come from the test's transaction, not the code under test.
        if "SAVEPOINT" not in statement:
            seen.append(" ".join(statement.split()))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


async def make_authors(authors: Authors, count: int) -> list[Author]:
    return [
        await authors.create(email=f"a{i:02}@x.test", name=f"Author {i % 3}", rank=i % 5)
        for i in range(count)
    ]


# -- reading ----------------------------------------------------------------


async def test_create_is_one_insert_returning_with_server_defaults(session: AsyncSession) -> None:
    authors = Authors(session)
    with statements(session) as seen:
        author = await authors.create(email="ada@x.test", name="Ada")
    assert [s.split()[0] for s in seen] == ["INSERT"]
    assert "RETURNING" in seen[-1]
    assert isinstance(author.id, uuid.UUID)
    assert (author.rank, author.tags, author.kind) == (0, [], "human")
    assert author.created_at == author.updated_at
    assert author.created_at.tzinfo is not None


async def test_get_returns_the_row_or_none(session: AsyncSession) -> None:
    authors = Authors(session)
    author = await authors.create(email="ada@x.test", name="Ada")
    with statements(session) as seen:
        assert await authors.get(author.id) is author
    assert seen == []  # answered from the identity map
    assert await authors.get(uuid.uuid4()) is None
    assert (await authors.get_by_email("ada@x.test")) is author
    assert await authors.get_by_email("nobody@x.test") is None


async def test_get_one_raises_not_found_naming_the_model(session: AsyncSession) -> None:
    authors = Authors(session)
    missing = uuid.uuid4()
    with pytest.raises(NotFound, match=f"Author {missing} not found") as caught:
        await authors.get_one(missing)
    assert caught.value.status_code == 404
    author = await authors.create(email="ada@x.test", name="Ada")
    assert await authors.get_one(author.id) is author


async def test_exists_and_count_with_expressions_and_keywords(session: AsyncSession) -> None:
    authors = Authors(session)
    await make_authors(authors, 7)
    assert await authors.count() == 7
    assert await authors.count(Author.rank >= 3) == 2
    assert await authors.count(Author.rank >= 3, name="Author 0") == 1
    assert await authors.exists(email="a03@x.test")
    assert not await authors.exists(Author.rank > 10)
    with pytest.raises(TypeError, match=r"no column attribute 'mail'; valid: .*email"):
        await authors.count(mail="a@x.test")


async def test_list_filters_orders_and_paginates_by_offset(session: AsyncSession) -> None:
    authors = Authors(session)
    made = await make_authors(authors, 10)
    ranked = await authors.list(order_by=("-rank", "email"))
    assert [a.email for a in ranked] == [
        a.email for a in sorted(made, key=lambda a: (-a.rank, a.email))
    ]
    assert ranked == await authors.list(order_by=[Author.rank.desc(), Author.email])
    window = await authors.list(Author.rank < 4, order_by="email", limit=3, offset=2)
    assert [a.email for a in window] == ["a02@x.test", "a03@x.test", "a05@x.test"]
    named = await authors.list(name="Author 1", order_by=Author.email)
    assert [a.email for a in named] == ["a01@x.test", "a04@x.test", "a07@x.test"]
    # No ordering given: primary key order, so offset pages are stable.
    assert [a.id for a in await authors.list()] == sorted(a.id for a in made)


async def test_unknown_order_name_is_a_client_error(session: AsyncSession) -> None:
    with pytest.raises(DataError, match=r"cannot order by 'rnak'; valid: .*rank") as caught:
        await Authors(session).list(order_by="-rnak")
    assert caught.value.status_code == 400


async def test_keyset_pages_cover_every_row_once(session: AsyncSession) -> None:
    authors = Authors(session)
    await make_authors(authors, 23)
    orders: list[list[OrderBy] | None] = [
        ["-rank", "email"],
        ["rank"],
        [Author.name.desc(), Author.id.desc()],
        None,
    ]
    for order in orders:
        expected = [a.id for a in await authors.list(order_by=order)]
        seen: list[uuid.UUID] = []
        cursor: str | None = None
        pages = 0
        while True:
            page = await authors.page(order_by=order, limit=5, after=cursor)
            assert isinstance(page, Page)
            seen += [a.id for a in page.items]
            pages += 1
            cursor = page.next_cursor
            if cursor is None:
                break
        assert seen == expected, order
        assert pages == 5


async def test_keyset_cursor_with_dates_and_filters(session: AsyncSession) -> None:
    authors = Authors(session)
    author = await authors.create(email="ada@x.test", name="Ada")
    books = Books(session)
    for i in range(6):
        await books.create(
            author_id=author.id, title=f"t{i}", published=datetime.date(2020, 1, 1 + i % 3)
        )
    first = await books.page(author_id=author.id, order_by="-published", limit=4)
    assert first.next_cursor is not None
    rest = await books.list(author_id=author.id, order_by="-published", after=first.next_cursor)
    everything = await books.list(author_id=author.id, order_by="-published")
    assert first.items + rest == everything
    assert [b.published.day for b in everything] == [3, 3, 2, 2, 1, 1]


@pytest.mark.parametrize("cursor", ["not base64!", "e30", "WzFd", "WyJ4IiwieCJd", "WzEsIjEyMyJd"])
async def test_a_forged_cursor_is_a_client_error(session: AsyncSession, cursor: str) -> None:
    with pytest.raises(DataError, match="invalid cursor") as caught:
        await Authors(session).page(order_by="-rank", after=cursor)
    assert caught.value.status_code == 400


async def test_keyset_refuses_nullable_and_expression_orderings(session: AsyncSession) -> None:
    authors = Authors(session)
    with pytest.raises(ValueError, match=r"authors\.nickname is nullable"):
        await authors.page(order_by="nickname")
    with pytest.raises(ValueError, match="mapped columns only"):
        await authors.page(order_by=func.lower(Author.name))
    # Offset listing accepts both.
    await authors.list(order_by=[Author.nickname, func.lower(Author.name)])


async def test_list_and_count_keeps_the_total_past_the_last_page(session: AsyncSession) -> None:
    authors = Authors(session)
    await make_authors(authors, 12)
    rows, total = await authors.list_and_count(order_by="email", limit=5)
    assert (len(rows), total) == (5, 12)
    rows, total = await authors.list_and_count(order_by="email", limit=5, offset=10)
    assert ([a.email for a in rows], total) == (["a10@x.test", "a11@x.test"], 12)
    with statements(session) as seen:
        rows, total = await authors.list_and_count(order_by="email", limit=5, offset=15)
    assert (rows, total) == ([], 12)
    assert len(seen) == 2  # the empty page, then one count
    rows, total = await authors.list_and_count(Author.rank > 3, limit=5)
    assert (len(rows), total) == (2, 2)
    with statements(session) as seen:
        assert await authors.list_and_count(Author.rank > 9) == ([], 0)
    assert len(seen) == 1  # an empty first page needs no count


# -- writing ----------------------------------------------------------------


async def test_update_returns_the_row_and_refreshes_the_loaded_object(
    session: AsyncSession,
) -> None:
    authors = Authors(session)
    author = await authors.create(email="ada@x.test", name="Ada")
    created = author.updated_at
    with statements(session) as seen:
        updated = await authors.update(author.id, name="Ada L.", rank=func.greatest(5, 3))
    assert len(seen) == 1
    assert updated is author
    assert (author.name, author.rank) == ("Ada L.", 5)
    assert author.updated_at >= created
    missing = uuid.uuid4()
    with pytest.raises(NotFound, match=f"Author {missing} not found"):
        await authors.update(missing, name="x")


async def test_update_many_leaves_loaded_objects_readable(session: AsyncSession) -> None:
    authors = Authors(session)
    made = await make_authors(authors, 6)
    changed = await authors.update_many(
        Author.rank >= 3, values={"nickname": func.upper(Author.name)}
    )
    assert {a.id for a in changed} == {a.id for a in made if a.rank >= 3}
    # The objects loaded before are current, not expired (no MissingGreenlet).
    assert {a.nickname for a in made} == {None, "AUTHOR 0", "AUTHOR 1"}
    assert await authors.update_many(name="nobody", values={"rank": 1}) == []


async def test_delete_and_delete_many(session: AsyncSession) -> None:
    authors = Authors(session)
    made = await make_authors(authors, 5)
    await authors.delete(made[0].id)
    assert await authors.get(made[0].id) is None
    with pytest.raises(NotFound):
        await authors.delete(made[0].id)
    assert await authors.delete_many(Author.rank >= 3) == 2
    assert await authors.delete_many(name="nobody") == 0
    assert await authors.count() == 2


async def test_upsert_inserts_then_updates_the_same_row(session: AsyncSession) -> None:
    authors = Authors(session)
    first = await authors.upsert({"email": "ada@x.test", "name": "Ada"}, conflict=["email"])
    second = await authors.upsert(
        {"email": "ada@x.test", "name": "Ada L.", "rank": 2}, conflict=["email"]
    )
    assert second is first
    assert (second.name, second.rank) == ("Ada L.", 2)
    # update=(): keep the stored row, still return it.
    kept = await authors.upsert(
        {"email": "ada@x.test", "name": "ignored"}, conflict=["email"], update=()
    )
    assert kept.id == first.id
    assert kept.name == "Ada L."
    only_rank = await authors.upsert(
        {"email": "ada@x.test", "name": "ignored", "rank": 4}, conflict=["email"], update=["rank"]
    )
    assert (only_rank.name, only_rank.rank) == ("Ada L.", 4)
    assert await authors.count() == 1


async def test_composite_primary_keys(session: AsyncSession) -> None:
    shelves = Shelves(session)
    await shelves.create(room="a", number=1, label="one")
    await shelves.create(room="a", number=2, label="two")
    assert (await shelves.get_one(("a", 2))).label == "two"
    assert (await shelves.update(("a", 1), label="uno")).label == "uno"
    await shelves.delete(("a", 2))
    assert await shelves.get(("a", 2)) is None
    assert [s.label for s in await shelves.list()] == ["uno"]


# -- errors -----------------------------------------------------------------


async def test_duplicate_is_a_conflict_naming_the_constraint(session: AsyncSession) -> None:
    authors = Authors(session)
    await authors.create(email="ada@x.test", name="Ada")
    with pytest.raises(Conflict) as caught:
        await authors.create(email="ada@x.test", name="Other")
    assert caught.value.constraint == "uq_authors_email"
    assert caught.value.status_code == 409


async def test_missing_reference_is_a_constraint_violation(session: AsyncSession) -> None:
    with pytest.raises(ConstraintViolation) as caught:
        await Books(session).create(author_id=uuid.uuid4(), title="orphan")
    assert caught.value.constraint == "fk_books_author_id_authors"
    assert caught.value.status_code == 422


async def test_failed_check_is_a_constraint_violation(session: AsyncSession) -> None:
    authors = Authors(session)
    author = await authors.create(email="ada@x.test", name="Ada")
    with pytest.raises(ConstraintViolation) as caught:
        await authors.update(author.id, rank=-1)
    assert caught.value.constraint == "ck_authors_rank_positive"


async def test_missing_required_value_is_a_constraint_violation(session: AsyncSession) -> None:
    with pytest.raises(ConstraintViolation, match="not-null constraint violated"):
        await Authors(session).create(email="ada@x.test", name=None)


async def test_upsert_and_update_many_translate_errors(session: AsyncSession) -> None:
    authors = Authors(session)
    await authors.create(email="ada@x.test", name="Ada")
    with pytest.raises(ConstraintViolation):
        async with session.begin_nested():
            await authors.update_many(values={"rank": -5})
    with pytest.raises(ConstraintViolation):
        await authors.upsert({"email": "ada@x.test", "name": "A", "rank": -1}, conflict=["email"])


async def test_a_value_that_does_not_fit_is_invalid_value(session: AsyncSession) -> None:
    # Errors that are not the data's fault stay server errors: tests/test_errors.py.
    with pytest.raises(InvalidValue, match="value too long"):
        async with session.begin_nested():
            await Authors(session).create(email="x" * 101, name="Long")
    # COPY talks to asyncpg directly; its exception is translated the same way.
    with pytest.raises(InvalidValue, match="value too long"):
        async with session.begin_nested():
            await Authors(session).bulk_insert([{"email": "x" * 101, "name": "Long"}])


async def test_refresh_reads_what_sql_changed_behind_the_orm(session: AsyncSession) -> None:
    authors = Authors(session)
    author = await authors.create(email="ada@x.test", name="Ada")
    await session.execute(text("UPDATE authors SET rank = 9"))
    assert author.rank == 0
    assert (await authors.refresh(author)).rank == 9


# -- bulk insert ------------------------------------------------------------


def _rows(count: int) -> list[dict[str, Any]]:
    return [
        {"email": f"bulk{i}@x.test", "name": f"Bulk {i}", "tags": ["t", str(i)]}
        for i in range(count)
    ]


async def test_bulk_insert_uses_copy_on_asyncpg(asyncpg_session: AsyncSession) -> None:
    authors = Authors(asyncpg_session)
    with statements(asyncpg_session) as seen:
        assert await authors.bulk_insert(_rows(2500)) == 2500
    # COPY goes through the driver directly: SQLAlchemy saw no INSERT.
    assert not [s for s in seen if s.startswith("INSERT")]
    assert await authors.count() == 2500
    stored = await authors.get_by_email("bulk7@x.test")
    assert stored is not None
    # JSONB went through the type's bind processor; the constant default applied.
    assert (stored.tags, stored.kind, stored.rank) == (["t", "7"], "human", 0)
    assert await authors.bulk_insert([]) == 0


async def test_bulk_copy_stays_inside_the_transaction(engines: dict[str, AsyncEngine]) -> None:
    async with engines["asyncpg"].connect() as connection:
        async with AsyncSession(bind=connection) as session:
            # COPY is the first statement: the transaction must begin first.
            await Authors(session).bulk_insert(_rows(3))
            await session.rollback()
        count = await connection.scalar(select(func.count()).select_from(Author))
        await connection.rollback()
    assert count == 0


async def test_bulk_insert_uses_batched_inserts_otherwise(session: AsyncSession) -> None:
    authors = Authors(session)
    author = await authors.create(email="ada@x.test", name="Ada")
    books = Books(session)
    rows = [{"author_id": author.id, "title": f"Book {i}"} for i in range(2100)]
    with statements(session) as seen:
        # Book.code has a callable Python default, which COPY cannot apply per row.
        assert await books.bulk_insert(rows) == 2100
    inserts = [s for s in seen if s.startswith("INSERT")]
    assert len(inserts) == 3  # 1000 + 1000 + 100 rows
    codes = {book.code for book in await books.list(author_id=author.id)}
    assert len(codes) == 2100
    # Rows with different keys are grouped, each group batched.
    mixed: list[dict[str, Any]] = [
        {"email": "m1@x.test", "name": "M"},
        {"email": "m2@x.test", "name": "M", "rank": 3},
    ]
    assert await authors.bulk_insert(mixed) == 2
    assert (await authors.get_by_email("m2@x.test")).rank == 3  # type: ignore[union-attr]


async def test_bulk_insert_translates_errors(session: AsyncSession) -> None:
    authors = Authors(session)
    with pytest.raises(TypeError, match="no column attribute 'titel'"):
        await Books(session).bulk_insert([{"titel": "x"}])
    with pytest.raises(Conflict) as caught:
        async with session.begin_nested():
            await authors.bulk_insert([{"email": "same@x.test", "name": "A"}] * 2)
    assert caught.value.constraint == "uq_authors_email"
    with pytest.raises(ConstraintViolation):
        await Books(session).bulk_insert([{"author_id": uuid.uuid4(), "title": "orphan"}])


# -- relationships ----------------------------------------------------------


async def test_unloaded_relationship_names_the_attribute(session: AsyncSession) -> None:
    authors = Authors(session)
    author = await authors.create(email="ada@x.test", name="Ada")
    await Books(session).create(author_id=author.id, title="Notes")
    with pytest.raises(InvalidRequestError, match=r"'Author\.books' is not available"):
        _ = author.books
    loaded = await authors.list(id=author.id, options=[selectinload(Author.books)])
    assert [b.title for b in loaded[0].books] == ["Notes"]
    book = await Books(session).get_one(loaded[0].books[0].id, options=[selectinload(Book.author)])
    assert book.author is author


def test_lazy_select_relationships_are_refused() -> None:
    class Other(DeclarativeBase):
        pass

    class Parent(Other):
        __tablename__ = "parents"
        id: Mapped[int] = mapped_column(primary_key=True)
        children: Mapped[list[Child]] = relationship()

    class Child(Other):
        __tablename__ = "children"
        id: Mapped[int] = mapped_column(primary_key=True)
        parent_id: Mapped[int] = mapped_column(ForeignKey("parents.id"))

    class Parents(Repository[Parent]):
        pass

    with pytest.raises(
        ConfigurationError, match=r"Parent.children has lazy='select'.*selectinload"
    ):
        Parents(AsyncSession())

    class Lenient(Repository[Parent]):
        strict_loading = False

    assert Lenient(AsyncSession()).model is Parent


def test_the_model_may_be_named_explicitly() -> None:
    class Explicit(Repository[Any]):
        model = Author

    assert Explicit(AsyncSession()).model is Author


def test_a_repository_needs_a_model() -> None:
    class Nothing(Repository):  # type: ignore[type-arg]
        pass

    with pytest.raises(ConfigurationError, match="Nothing has no model"):
        Nothing(AsyncSession())


# -- prepared statements ----------------------------------------------------


async def test_get_in_an_empty_session_is_one_select_then_the_identity_map(
    session: AsyncSession,
) -> None:
    authors = Authors(session)
    author_id = (await authors.create(email="ada@x.test", name="Ada")).id
    session.expunge_all()
    with statements(session) as seen:
        author = await authors.get(author_id)
        assert author is not None
        assert author.email == "ada@x.test"
        assert await authors.get(author_id) is author
        assert await authors.get((author_id,)) is author  # a 1-tuple is a key too
    assert [s.split()[0] for s in seen] == ["SELECT"]
    session.expunge_all()
    assert await authors.get((author_id,)) is not None
    session.expunge_all()
    assert await authors.get(uuid.uuid4()) is None
    shelves = Shelves(session)
    await shelves.create(room="b", number=1, label="one")
    session.expunge_all()
    assert (await shelves.get_one(["b", 1])).label == "one"
    with pytest.raises(InvalidRequestError, match="Incorrect number of values"):
        await shelves.get(("b",))


async def test_joined_relationships_make_results_unique(session: AsyncSession) -> None:
    from plinth.repository.mapping import joins_eagerly

    class Local(DeclarativeBase):
        pass

    class Parent(Local):
        __tablename__ = "joined_parents"
        id: Mapped[int] = mapped_column(primary_key=True)
        children: Mapped[list[Child]] = relationship(lazy="joined", order_by="Child.id")

    class Child(Local):
        __tablename__ = "joined_children"
        id: Mapped[int] = mapped_column(primary_key=True)
        parent_id: Mapped[int] = mapped_column(ForeignKey("joined_parents.id"))

    class Parents(Repository[Parent]):
        pass

    assert joins_eagerly(Child.__mapper__)
    assert not joins_eagerly(Author.__mapper__)
    await (await session.connection()).run_sync(Local.metadata.create_all)
    session.add(Parent(id=1, children=[Child(id=1), Child(id=2)]))
    await session.flush()
    session.expunge_all()
    parent = await Parents(session).get_one(1)  # two joined rows, one parent
    assert [child.id for child in parent.children] == [1, 2]
    for limit in (10, None):
        parents, total = await Parents(session).list_and_count(limit=limit)
        assert ([p.id for p in parents], total) == ([1], 1)
    assert [p.id for p in await Parents(session).list()] == [1]
    assert [p.id for p in (await Parents(session).page(limit=5)).items] == [1]


# -- HTTP -------------------------------------------------------------------


async def test_fastapi_answers_repository_errors_with_4xx(session: AsyncSession) -> None:
    app = FastAPI(exception_handlers=exception_handlers)

    async def repository() -> Authors:
        return Authors(session)

    @app.post("/authors", status_code=201)
    async def create(body: dict[str, Any], authors: Authors = Depends(repository)) -> str:
        async with session.begin_nested():
            return str((await authors.create(**body)).id)

    @app.get("/authors/{author_id}")
    async def read(author_id: uuid.UUID, authors: Authors = Depends(repository)) -> str:
        return (await authors.get_one(author_id)).email

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        created = await client.post("/authors", json={"email": "ada@x.test", "name": "Ada"})
        assert created.status_code == 201
        assert (await client.get(f"/authors/{created.json()}")).json() == "ada@x.test"
        duplicate = await client.post("/authors", json={"email": "ada@x.test", "name": "B"})
        assert duplicate.status_code == 409
        assert duplicate.json()["constraint"] == "uq_authors_email"
        negative = await client.post(
            "/authors", json={"email": "b@x.test", "name": "B", "rank": -3}
        )
        assert negative.status_code == 422
        assert negative.json()["constraint"] == "ck_authors_rank_positive"
        missing = await client.get(f"/authors/{uuid.uuid4()}")
        assert missing.status_code == 404
        bad_id = await client.get("/authors/not-a-uuid")
        assert bad_id.status_code == 422


# -- edges: what is not the data's fault, and values a cursor cannot hold ------


class GhostBase(DeclarativeBase):
    """A model whose table was never created."""


class Ghost(GhostBase):
    __tablename__ = "ghosts"

    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(String(20))


class Ghosts(Repository[Ghost]):
    pass


def _sqlstate(exc: BaseException) -> str | None:
    orig = getattr(exc, "orig", None) or exc
    return getattr(orig, "sqlstate", None)


async def test_errors_not_caused_by_the_data_are_raised_unchanged(session: AsyncSession) -> None:
    """An undefined table is the app's bug, not the client's: no 4xx, the driver's error."""
    ghosts = Ghosts(session)
    with pytest.raises(Exception, match="ghosts") as listed:
        async with session.begin_nested():
            await ghosts.list()
    with pytest.raises(Exception, match="ghosts") as deleted:
        async with session.begin_nested():
            await ghosts.delete_many(name="boo")
    with pytest.raises(Exception, match="ghosts") as written:
        async with session.begin_nested():
            # One key: on asyncpg, COPY with a single column of plain values.
            await ghosts.bulk_insert([{"name": "boo"}, {"name": "hoo"}])
    for caught in (listed, deleted, written):
        assert not isinstance(caught.value, DataError)
        assert _sqlstate(caught.value) == "42P01"


async def test_bulk_copy_of_plain_values(asyncpg_session: AsyncSession) -> None:
    shelves = Shelves(asyncpg_session)
    # No bind processor and no default: the rows go to COPY as plain tuples.
    rows = [{"room": "r", "number": n, "label": f"L{n}"} for n in range(3)]
    assert await shelves.bulk_insert(rows) == 3
    assert sorted(shelf.label for shelf in await shelves.list(room="r")) == ["L0", "L1", "L2"]


async def test_a_partly_null_composite_key_finds_nothing(session: AsyncSession) -> None:
    shelves = Shelves(session)
    await shelves.create(room="a", number=1, label="first")
    assert await shelves.get(("a", None)) is None


def test_a_cursor_refuses_values_it_cannot_hold() -> None:
    from plinth.repository.pagination import encode_cursor

    with pytest.raises(TypeError, match="cannot put a object in a cursor"):
        encode_cursor([object()])


def test_a_cursor_value_of_a_type_without_python_type_passes_as_decoded() -> None:
    """Third-party types may raise NotImplementedError for `python_type`."""
    from sqlalchemy import Column
    from sqlalchemy.types import UserDefinedType

    from plinth.repository.pagination import Ordering, decode_cursor, encode_cursor

    class Opaque(UserDefinedType[Any]):
        cache_ok = True

        def get_col_spec(self, **kw: Any) -> str:
            return "opaque"

        @property
        def python_type(self) -> type[Any]:
            raise NotImplementedError

    column: Column[Any] = Column("anything", Opaque())
    term = Ordering(expression=column, key="anything", descending=False, column=column)
    assert decode_cursor(encode_cursor([[1, "x"]]), [term]) == [[1, "x"]]
