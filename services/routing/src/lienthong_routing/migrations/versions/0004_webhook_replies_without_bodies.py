"""Webhooks: receivers' replies kept without their bodies; status pushes still queued by reference.

Until now a failed push kept the first 200 characters of the receiver's reply (or the
connection error's text) in `webhook_attempts.error`, `webhook_deliveries.last_error` and the
document's timeline line for a dead letter, all shown to the agency: a server-side request
forgery read internal replies through them. They are cut to the status code and a fixed reason.
Status payloads not yet pushed lose the package they carried inline (its URL stays).
The evidence log is hash-chained and is left as it was.

Revision ID: 0004
Revises: 0003
Create Date: 2027-01-12 09:00:00
"""

import json
import re
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_HTTP = re.compile(r"HTTP (\d{3})")
_DEAD = re.compile(r"^(webhook push dead-lettered after \d+ attempts: )(.*)$", re.DOTALL)
_FIXED = {
    "ConnectError": "connection failed",
    "ConnectTimeout": "timed out",
    "ReadTimeout": "timed out",
    "WriteTimeout": "timed out",
    "PoolTimeout": "timed out",
    "RemoteProtocolError": "the receiver broke the HTTP protocol",
}


def scrubbed(error: str) -> str:
    """The fixed reason an old error text stands for (what the dispatcher records now)."""
    if not error:
        return error
    status = _HTTP.match(error)
    if status:
        code = int(status.group(1))
        return f"HTTP {code} (redirects are not followed)" if 300 <= code < 400 else f"HTTP {code}"
    name = error.split(":", 1)[0].strip()
    return _FIXED.get(name, f"request failed ({name})" if name.isidentifier() else "request failed")


def upgrade() -> None:
    bind = op.get_bind()
    attempts = sa.table('webhook_attempts', sa.column('id', sa.Integer), sa.column('error', sa.Text))
    for row_id, error in bind.execute(sa.select(attempts.c.id, attempts.c.error).where(attempts.c.error != '')):
        if scrubbed(error) != error:
            bind.execute(attempts.update().where(attempts.c.id == row_id).values(error=scrubbed(error)))

    items = sa.table(
        'webhook_deliveries',
        sa.column('id', sa.String),
        sa.column('kind', sa.String),
        sa.column('state', sa.String),
        sa.column('last_error', sa.Text),
        sa.column('payload', sa.LargeBinary),
    )
    query = sa.select(items.c.id, items.c.kind, items.c.state, items.c.last_error, items.c.payload)
    for row_id, kind, state, last_error, payload in bind.execute(query):
        values: dict[str, object] = {}
        if last_error and scrubbed(last_error) != last_error:
            values['last_error'] = scrubbed(last_error)
        if kind == 'status' and state != 'pushed':
            body = json.loads(payload)
            status = body.get('status', {})
            if 'package_base64' in status:
                status.pop('package_base64')
                status.setdefault('content_type', 'application/xml')
                values['payload'] = json.dumps(body, ensure_ascii=False, separators=(',', ':')).encode()
        if values:
            bind.execute(items.update().where(items.c.id == row_id).values(**values))

    entries = sa.table(
        'status_entries',
        sa.column('id', sa.Integer),
        sa.column('state', sa.String),
        sa.column('description', sa.Text),
    )
    lines = sa.select(entries.c.id, entries.c.description).where(entries.c.state == 'push_dead_lettered')
    for row_id, description in bind.execute(lines):
        line = _DEAD.match(description or '')
        if line and scrubbed(line.group(2)) != line.group(2):
            text = line.group(1) + scrubbed(line.group(2))
            bind.execute(entries.update().where(entries.c.id == row_id).values(description=text))


def downgrade() -> None:
    pass  # the bodies are gone, on purpose
