"""Linked Spotify accounts, pending OAuth states and relink notices (tables ``linked_accounts``,
``oauth_states``, ``relink_notices``).

Secrets never reach the database in clear text: the token JSON ``{access, refresh,
expires_at}`` and the PKCE code verifier are Fernet-encrypted (AES-128-CBC + HMAC-SHA256)
with the key from ``TOKEN_ENCRYPTION_KEY``, or, when that is unset, with a key generated once
into a ``0600`` file next to the database (see :func:`load_cipher`).
"""

from __future__ import annotations

import json
import logging
import os
import stat
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from bot.config import Settings
from bot.errors import StorageError
from storage.db import Database, utcnow

log = logging.getLogger(__name__)


class UndecryptableTokens(Exception):
    """Stored ciphertext cannot be decrypted (the encryption key changed or was lost)."""


def key_file_path(settings: Settings) -> Path | None:
    """Where the generated key lives: ``<database file>.key``; None for an in-memory db."""
    db_path = Path(settings.database_path)
    if str(db_path) == ":memory:":
        return None
    return db_path.with_name(db_path.name + ".key")


class UnsafeSecretFile(PermissionError):
    """A secret file others can read, whose mode this process cannot change."""


def ensure_private_file(path: Path) -> bool:
    """Make sure only the owner can read ``path`` (a key file). Returns True when it was
    tightened to 0600 (and logs a warning); raises UnsafeSecretFile when that is impossible."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if not mode & 0o077:
        return False
    try:
        os.chmod(path, 0o600)
    except OSError as exc:
        raise UnsafeSecretFile(
            f"The key file {path} can be read by other users (mode {mode:04o}) and I can't "
            f"change that ({exc.strerror or exc}). Run `chmod 600 {path}` as its owner, then "
            "start the bot again."
        ) from None
    log.warning(
        "The key file %s could be read by other users (mode %04o); changed it to 0600.",
        path,
        mode,
    )
    return True


def _read_or_create_key_file(path: Path) -> bytes:
    """Read the key file, or create it atomically with 0600 permissions (never logs the key)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        ensure_private_file(path)  # a key others can read is tightened to 0600, or refused
        return path.read_bytes().strip()
    key = Fernet.generate_key()
    with os.fdopen(fd, "wb") as fh:
        fh.write(key + b"\n")
    log.warning(
        "TOKEN_ENCRYPTION_KEY is not set: generated a token encryption key in %s (mode 0600). "
        "Back it up with the database; without it linked accounts must be linked again.",
        path,
    )
    return key


def load_cipher(settings: Settings) -> MultiFernet:
    """The cipher for tokens at rest.

    ``TOKEN_ENCRYPTION_KEY`` may hold several comma-separated Fernet keys: the first encrypts,
    all decrypt (key rotation). Without it a key file next to the database is used/created.
    """
    keys: list[bytes]
    if settings.token_encryption_key is not None:
        raw = settings.token_encryption_key.get_secret_value()
        keys = [k.strip().encode() for k in raw.split(",") if k.strip()]
    else:
        path = key_file_path(settings)
        if path is None:
            log.warning("In-memory database: linked-account tokens use a throw-away key.")
            keys = [Fernet.generate_key()]
        else:
            keys = [_read_or_create_key_file(path)]
    try:
        return MultiFernet([Fernet(k) for k in keys])
    except (ValueError, TypeError) as exc:
        # Do not include the value: it is a secret.
        raise StorageError(
            "TOKEN_ENCRYPTION_KEY is not a valid Fernet key (32 url-safe base64-encoded bytes). "
            'Generate one with: python -c "from cryptography.fernet import Fernet; '
            'print(Fernet.generate_key().decode())"'
        ) from exc


@dataclass
class TokenSet:
    """A user's OAuth tokens; ``expires_at`` is a UNIX timestamp."""

    access: str
    refresh: str
    expires_at: float

    def to_json(self) -> bytes:
        return json.dumps(
            {"access": self.access, "refresh": self.refresh, "expires_at": self.expires_at}
        ).encode()

    def __repr__(self) -> str:  # never print tokens by accident
        return f"TokenSet(expires_at={self.expires_at!r})"


@dataclass
class LinkedAccount:
    discord_user_id: int
    spotify_user_id: str | None
    display_name: str | None
    tokens: TokenSet
    scopes: list[str]
    linked_at: str
    updated_at: str


@dataclass
class RelinkNotice:
    """A member's link the bot had to drop, to be told once (``reason``: expired | unreadable;
    ``created_at``: when, ISO UTC)."""

    discord_user_id: int
    reason: str
    created_at: str


@dataclass
class PendingState:
    state: str
    discord_user_id: int
    verifier: str
    created_at: str
    used_at: str | None


class AccountStore:
    """Queries on ``linked_accounts`` and ``oauth_states``; encrypts/decrypts transparently."""

    def __init__(self, db: Database, cipher: MultiFernet) -> None:
        self.db = db
        self.cipher = cipher

    # --- oauth_states -------------------------------------------------------------------
    async def add_state(self, state: str, discord_user_id: int, verifier: str) -> None:
        await self.db.execute(
            "INSERT INTO oauth_states (state, discord_user_id, verifier_blob, created_at) "
            "VALUES (?, ?, ?, ?)",
            (state, discord_user_id, self.cipher.encrypt(verifier.encode()), utcnow()),
        )

    async def get_state(self, state: str) -> PendingState | None:
        row = await self.db.fetchone(
            "SELECT state, discord_user_id, verifier_blob, created_at, used_at "
            "FROM oauth_states WHERE state = ?",
            (state,),
        )
        if row is None:
            return None
        try:
            verifier = self.cipher.decrypt(bytes(row["verifier_blob"])).decode()
        except InvalidToken as exc:
            raise UndecryptableTokens("oauth state") from exc
        return PendingState(
            state=row["state"],
            discord_user_id=int(row["discord_user_id"]),
            verifier=verifier,
            created_at=row["created_at"],
            used_at=row["used_at"],
        )

    async def mark_state_used(self, state: str) -> bool:
        """Atomically claim a state; False if it was already used (replay) or is unknown."""
        async with self.db.transaction() as conn:
            cur = await conn.execute(
                "UPDATE oauth_states SET used_at = ? WHERE state = ? AND used_at IS NULL",
                (utcnow(), state),
            )
            return cur.rowcount == 1

    async def purge_states(self, older_than: timedelta) -> int:
        """Delete states created before now - ``older_than`` (used or not)."""
        cutoff = (datetime.now(UTC) - older_than).isoformat(timespec="seconds")
        async with self.db.transaction() as conn:
            cur = await conn.execute("DELETE FROM oauth_states WHERE created_at < ?", (cutoff,))
            return cur.rowcount

    # --- linked_accounts ----------------------------------------------------------------
    async def save_account(
        self,
        discord_user_id: int,
        *,
        spotify_user_id: str | None,
        display_name: str | None,
        tokens: TokenSet,
        scopes: list[str],
    ) -> None:
        """Insert or replace the user's link (a new link starts a new ``linked_at``); a
        pending relink notice is moot then and goes."""
        now = utcnow()
        async with self.db.transaction() as conn:
            await conn.execute(
                "DELETE FROM relink_notices WHERE discord_user_id = ?", (discord_user_id,)
            )
            await conn.execute(
                "INSERT INTO linked_accounts (discord_user_id, spotify_user_id, display_name, "
                "token_blob, scopes, linked_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(discord_user_id) DO UPDATE SET"
                " spotify_user_id = excluded.spotify_user_id, display_name = excluded.display_name,"
                " token_blob = excluded.token_blob,"
                " scopes = excluded.scopes, linked_at = excluded.linked_at,"
                " updated_at = excluded.updated_at",
                (
                    discord_user_id,
                    spotify_user_id,
                    display_name,
                    self.cipher.encrypt(tokens.to_json()),
                    " ".join(scopes),
                    now,
                    now,
                ),
            )

    async def update_tokens(self, discord_user_id: int, tokens: TokenSet) -> None:
        await self.db.execute(
            "UPDATE linked_accounts SET token_blob = ?, updated_at = ? WHERE discord_user_id = ?",
            (self.cipher.encrypt(tokens.to_json()), utcnow(), discord_user_id),
        )

    async def get_account(self, discord_user_id: int) -> LinkedAccount | None:
        """The decrypted link, None if not linked; raises UndecryptableTokens on a key change."""
        row = await self.db.fetchone(
            "SELECT * FROM linked_accounts WHERE discord_user_id = ?", (discord_user_id,)
        )
        if row is None:
            return None
        try:
            data: dict[str, Any] = json.loads(self.cipher.decrypt(bytes(row["token_blob"])))
        except InvalidToken as exc:
            raise UndecryptableTokens("linked account") from exc
        return LinkedAccount(
            discord_user_id=int(row["discord_user_id"]),
            spotify_user_id=row["spotify_user_id"],
            display_name=row["display_name"],
            tokens=TokenSet(
                access=data["access"],
                refresh=data["refresh"],
                expires_at=float(data["expires_at"]),
            ),
            scopes=[s for s in (row["scopes"] or "").split() if s],
            linked_at=row["linked_at"],
            updated_at=row["updated_at"],
        )

    async def has_account(self, discord_user_id: int) -> bool:
        """Whether the member is linked (nothing decrypted)."""
        row = await self.db.fetchone(
            "SELECT 1 FROM linked_accounts WHERE discord_user_id = ?", (discord_user_id,)
        )
        return row is not None

    async def delete_account(self, discord_user_id: int) -> bool:
        """The member's link, pending states and relink notice gone (unlink, /privacy delete)."""
        async with self.db.transaction() as conn:
            cur = await conn.execute(
                "DELETE FROM linked_accounts WHERE discord_user_id = ?", (discord_user_id,)
            )
            await conn.execute(
                "DELETE FROM oauth_states WHERE discord_user_id = ?", (discord_user_id,)
            )
            await conn.execute(
                "DELETE FROM relink_notices WHERE discord_user_id = ?", (discord_user_id,)
            )
            return cur.rowcount > 0

    # --- relink_notices -----------------------------------------------------------------
    async def drop_account(self, discord_user_id: int, reason: str) -> None:
        """Delete a link that stopped working and leave the member a notice, in one
        transaction (a crash never loses the link without the notice). A notice already
        pending or shown is replaced: this is a new event."""
        async with self.db.transaction() as conn:
            await conn.execute(
                "DELETE FROM linked_accounts WHERE discord_user_id = ?", (discord_user_id,)
            )
            await conn.execute(
                "DELETE FROM oauth_states WHERE discord_user_id = ?", (discord_user_id,)
            )
            await conn.execute(
                "INSERT INTO relink_notices (discord_user_id, reason, created_at, shown_at)"
                " VALUES (?, ?, ?, NULL) ON CONFLICT(discord_user_id) DO UPDATE SET"
                " reason = excluded.reason, created_at = excluded.created_at, shown_at = NULL",
                (discord_user_id, reason, utcnow()),
            )

    async def claim_notice(self, discord_user_id: int) -> RelinkNotice | None:
        """The member's pending notice, marked shown (compare-and-set: one caller gets it);
        None when there is none. :meth:`release_notice` when it could not be delivered."""
        row = await self.db.fetchone(
            "SELECT discord_user_id, reason, created_at FROM relink_notices"
            " WHERE discord_user_id = ? AND shown_at IS NULL",
            (discord_user_id,),
        )
        if row is None:
            return None
        async with self.db.transaction() as conn:
            cur = await conn.execute(
                "UPDATE relink_notices SET shown_at = ? WHERE discord_user_id = ?"
                " AND created_at = ? AND shown_at IS NULL",
                (utcnow(), discord_user_id, row["created_at"]),
            )
            if cur.rowcount != 1:
                return None
        return RelinkNotice(int(row["discord_user_id"]), row["reason"], row["created_at"])

    async def release_notice(self, notice: RelinkNotice) -> None:
        """A claimed notice could not be delivered: pending again (unless replaced since)."""
        await self.db.execute(
            "UPDATE relink_notices SET shown_at = NULL WHERE discord_user_id = ?"
            " AND created_at = ?",
            (notice.discord_user_id, notice.created_at),
        )
