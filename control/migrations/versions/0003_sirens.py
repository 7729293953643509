"""sirens: posts, groups, activations and their per-siren outcomes

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 12:50:00.000000

Portable on purpose: only types and operations that SQLite and PostgreSQL both have
(BIGINT epoch milliseconds, TEXT holding JSON), with batch mode for SQLite's ALTER TABLE.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A siren.activate command carries its SirenOrder; the record keeps it as signed.
    with op.batch_alter_table("commands", schema=None) as batch_op:
        batch_op.add_column(sa.Column("siren", sa.Text(), nullable=True))

    op.create_table(
        "siren_posts",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("site", sa.String(length=64), nullable=False),
        sa.Column("gateway", sa.String(length=64), nullable=False),
        sa.Column("device", sa.String(length=64), nullable=False),
        sa.Column("district", sa.String(length=64), nullable=False),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.Column("radius_m", sa.Float(), nullable=False),
        sa.Column("profile", sa.String(length=32), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("last_test_outcome", sa.String(length=16), nullable=True),
        sa.Column("last_test_detail", sa.Text(), nullable=False),
        sa.Column("last_test_ms", sa.BigInteger(), nullable=True),
        sa.Column("last_test_activation", sa.String(length=64), nullable=True),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_siren_posts")),
        sa.UniqueConstraint("gateway", "device", name="uq_siren_posts_gateway_device"),
    )
    with op.batch_alter_table("siren_posts", schema=None) as batch_op:
        batch_op.create_index("ix_siren_posts_district", ["district"], unique=False)

    op.create_table(
        "siren_groups",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("members", sa.Text(), nullable=False),
        sa.Column("districts", sa.Text(), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_siren_groups")),
    )

    op.create_table(
        "siren_activations",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("signal", sa.String(length=64), nullable=True),
        sa.Column("signal_spec", sa.Text(), nullable=True),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("state_detail", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("requested_targets", sa.Text(), nullable=False),
        sa.Column("requested_by", sa.String(length=128), nullable=False),
        sa.Column("requested_ms", sa.BigInteger(), nullable=False),
        sa.Column("approve_by_ms", sa.BigInteger(), nullable=True),
        sa.Column("approved_by", sa.String(length=128), nullable=True),
        sa.Column("approved_ms", sa.BigInteger(), nullable=True),
        sa.Column("decision_comment", sa.Text(), nullable=False),
        sa.Column("dispatched_ms", sa.BigInteger(), nullable=True),
        sa.Column("expires_ms", sa.BigInteger(), nullable=True),
        sa.Column("cancelled_by", sa.String(length=128), nullable=True),
        sa.Column("cancelled_ms", sa.BigInteger(), nullable=True),
        sa.Column("finished_ms", sa.BigInteger(), nullable=True),
        sa.Column("schedule", sa.String(length=64), nullable=True),
        sa.Column("exercise", sa.String(length=128), nullable=True),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_siren_activations")),
    )
    with op.batch_alter_table("siren_activations", schema=None) as batch_op:
        batch_op.create_index("ix_siren_activations_state", ["state", "requested_ms"], unique=False)
        batch_op.create_index("ix_siren_activations_requested", ["requested_ms"], unique=False)
        batch_op.create_index(
            "ix_siren_activations_schedule", ["schedule", "requested_ms"], unique=False
        )

    op.create_table(
        "siren_targets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("activation_id", sa.String(length=64), nullable=False),
        sa.Column("siren", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("site", sa.String(length=64), nullable=False),
        sa.Column("gateway", sa.String(length=64), nullable=False),
        sa.Column("device", sa.String(length=64), nullable=False),
        sa.Column("district", sa.String(length=64), nullable=False),
        sa.Column("flags", sa.Text(), nullable=False),
        sa.Column("command_id", sa.String(length=128), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("sent_ms", sa.BigInteger(), nullable=True),
        sa.Column("started_ms", sa.BigInteger(), nullable=True),
        sa.Column("finished_ms", sa.BigInteger(), nullable=True),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["activation_id"],
            ["siren_activations.id"],
            name=op.f("fk_siren_targets_activation_id_siren_activations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_siren_targets")),
        sa.UniqueConstraint("activation_id", "siren", name="uq_siren_targets_activation_siren"),
    )
    with op.batch_alter_table("siren_targets", schema=None) as batch_op:
        batch_op.create_index("ix_siren_targets_command", ["command_id", "device"], unique=False)
        batch_op.create_index("ix_siren_targets_siren", ["siren", "finished_ms"], unique=False)

    op.create_table(
        "siren_activation_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("activation_id", sa.String(length=64), nullable=False),
        sa.Column("ts_ms", sa.BigInteger(), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["activation_id"],
            ["siren_activations.id"],
            name=op.f("fk_siren_activation_events_activation_id_siren_activations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_siren_activation_events")),
    )
    with op.batch_alter_table("siren_activation_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_siren_activation_events_activation_id"),
            ["activation_id"],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("siren_activation_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_siren_activation_events_activation_id"))
    op.drop_table("siren_activation_events")
    with op.batch_alter_table("siren_targets", schema=None) as batch_op:
        batch_op.drop_index("ix_siren_targets_siren")
        batch_op.drop_index("ix_siren_targets_command")
    op.drop_table("siren_targets")
    with op.batch_alter_table("siren_activations", schema=None) as batch_op:
        batch_op.drop_index("ix_siren_activations_schedule")
        batch_op.drop_index("ix_siren_activations_requested")
        batch_op.drop_index("ix_siren_activations_state")
    op.drop_table("siren_activations")
    op.drop_table("siren_groups")
    with op.batch_alter_table("siren_posts", schema=None) as batch_op:
        batch_op.drop_index("ix_siren_posts_district")
    op.drop_table("siren_posts")
    with op.batch_alter_table("commands", schema=None) as batch_op:
        batch_op.drop_column("siren")
