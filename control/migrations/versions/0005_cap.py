"""cap: the CAP 1.2 messages published for siren activations and read from upstream

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cap_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("direction", sa.String(length=8), nullable=False),
        sa.Column("identifier", sa.String(length=255), nullable=False),
        sa.Column("sender", sa.String(length=255), nullable=False),
        sa.Column("msg_type", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("activation", sa.String(length=64), nullable=True),
        sa.Column("schedule", sa.String(length=64), nullable=True),
        sa.Column("run_ts", sa.BigInteger(), nullable=True),
        sa.Column("references", sa.Text(), nullable=False),
        sa.Column("sent_ms", sa.BigInteger(), nullable=False),
        sa.Column("xml", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("published_ms", sa.BigInteger(), nullable=True),
        sa.Column("topic", sa.String(length=255), nullable=True),
        sa.Column("claimed_by", sa.String(length=128), nullable=True),
        sa.Column("claim_until_ms", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cap_messages")),
        sa.UniqueConstraint("direction", "sender", "identifier", name="uq_cap_messages_message"),
    )
    with op.batch_alter_table("cap_messages", schema=None) as batch_op:
        batch_op.create_index(
            "ix_cap_messages_activation", ["activation", "created_ms"], unique=False
        )
        batch_op.create_index("ix_cap_messages_created", ["created_ms"], unique=False)
        batch_op.create_index(
            "ix_cap_messages_unpublished", ["direction", "published_ms"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("cap_messages", schema=None) as batch_op:
        batch_op.drop_index("ix_cap_messages_unpublished")
        batch_op.drop_index("ix_cap_messages_created")
        batch_op.drop_index("ix_cap_messages_activation")
    op.drop_table("cap_messages")
