"""The mail agent's schema: users with Gmail OAuth tokens and Telegram ids (seed 003)."""

from __future__ import annotations

from sqlalchemy import Identity, Index, Integer, String, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from plinth import ddl
from plinth.encryption import EncryptedText


class Base(DeclarativeBase):
    metadata = ddl.new_metadata()


class User(ddl.Timestamps, Base):
    """One mail agent user; `is_active` false is the soft delete."""

    __tablename__ = "users"
    __table_args__ = (
        # Unique when set: many users have no Telegram account linked yet.
        Index(
            "uq_users_telegram_id",
            "telegram_id",
            unique=True,
            postgresql_where=text("telegram_id IS NOT NULL"),
        ),
    )

    # INTEGER as the seed says; an identity column rather than SERIAL, so the
    # app's role needs INSERT on the table only, not USAGE on a sequence.
    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    email: Mapped[str] = mapped_column(String(255), unique=True)
    gmail_oauth_token: Mapped[str | None] = mapped_column(EncryptedText())
    gmail_refresh_token: Mapped[str | None] = mapped_column(EncryptedText())
    telegram_id: Mapped[str | None] = mapped_column(String(100))
    telegram_username: Mapped[str | None] = mapped_column(String(100))
    is_active: Mapped[bool] = mapped_column(server_default=text("true"))
    onboarding_completed: Mapped[bool] = mapped_column(server_default=text("false"))

    @property
    def has_gmail_token(self) -> bool:
        return self.gmail_oauth_token is not None


ddl.updated_at_trigger(User)
