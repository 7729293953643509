"""conversions: orders (平战转换), their shelters, steps and history, and site postures

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 13:27:15.536268
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "conversion_orders",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("direction", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("level", sa.String(length=64), nullable=False),
        sa.Column("exercise", sa.String(length=64), nullable=True),
        sa.Column("area", sa.String(length=64), nullable=True),
        sa.Column("state", sa.String(length=24), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("requested_by", sa.String(length=128), nullable=False),
        sa.Column("requested_ms", sa.BigInteger(), nullable=False),
        sa.Column("approve_by_ms", sa.BigInteger(), nullable=True),
        sa.Column("approved_by", sa.String(length=128), nullable=True),
        sa.Column("approved_ms", sa.BigInteger(), nullable=True),
        sa.Column("decision_comment", sa.Text(), nullable=False),
        sa.Column("started_ms", sa.BigInteger(), nullable=True),
        sa.Column("deadline_s", sa.Double(), nullable=False),
        sa.Column("deadline_ms", sa.BigInteger(), nullable=True),
        sa.Column("warn_ms", sa.BigInteger(), nullable=True),
        sa.Column("warned", sa.Boolean(), nullable=False),
        sa.Column("missed", sa.Boolean(), nullable=False),
        sa.Column("finished_ms", sa.BigInteger(), nullable=True),
        sa.Column("cancelled_by", sa.String(length=128), nullable=True),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversion_orders")),
    )
    with op.batch_alter_table("conversion_orders", schema=None) as batch_op:
        batch_op.create_index("ix_conversion_orders_requested", ["requested_ms"], unique=False)
        batch_op.create_index("ix_conversion_orders_state", ["state", "updated_ms"], unique=False)

    op.create_table(
        "site_postures",
        sa.Column("site", sa.String(length=64), nullable=False),
        sa.Column("posture", sa.String(length=16), nullable=False),
        sa.Column("order_id", sa.String(length=64), nullable=True),
        sa.Column("kind", sa.String(length=8), nullable=True),
        sa.Column("exercise", sa.String(length=64), nullable=True),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.Column("published_ms", sa.BigInteger(), nullable=True),
        sa.Column("claimed_by", sa.String(length=128), nullable=True),
        sa.Column("claim_until_ms", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("site", name=op.f("pk_site_postures")),
    )
    with op.batch_alter_table("site_postures", schema=None) as batch_op:
        batch_op.create_index("ix_site_postures_unpublished", ["published_ms"], unique=False)

    op.create_table(
        "conversion_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.String(length=64), nullable=False),
        sa.Column("ts_ms", sa.BigInteger(), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("site", sa.String(length=64), nullable=False),
        sa.Column("step", sa.String(length=64), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["conversion_orders.id"],
            name=op.f("fk_conversion_events_order_id_conversion_orders"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversion_events")),
    )
    with op.batch_alter_table("conversion_events", schema=None) as batch_op:
        batch_op.create_index("ix_conversion_events_order", ["order_id", "id"], unique=False)

    op.create_table(
        "conversion_targets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.String(length=64), nullable=False),
        sa.Column("site", sa.String(length=64), nullable=False),
        sa.Column("gateway", sa.String(length=64), nullable=False),
        sa.Column("plan_name", sa.String(length=64), nullable=False),
        sa.Column("plan_version", sa.Integer(), nullable=False),
        sa.Column("plan_hash", sa.String(length=64), nullable=False),
        sa.Column("plan_json", sa.Text(), nullable=False),
        sa.Column("posture_before", sa.String(length=16), nullable=False),
        sa.Column("finished_ms", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["order_id"],
            ["conversion_orders.id"],
            name=op.f("fk_conversion_targets_order_id_conversion_orders"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversion_targets")),
        sa.UniqueConstraint("order_id", "site", name="uq_conversion_targets_order_site"),
    )
    with op.batch_alter_table("conversion_targets", schema=None) as batch_op:
        batch_op.create_index("ix_conversion_targets_site", ["site", "finished_ms"], unique=False)

    op.create_table(
        "conversion_steps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("target_id", sa.Integer(), nullable=False),
        sa.Column("step", sa.String(length=64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("started_ms", sa.BigInteger(), nullable=True),
        sa.Column("done_ms", sa.BigInteger(), nullable=True),
        sa.Column("confirmed_by", sa.String(length=128), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("command_id", sa.String(length=128), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("commanded_ms", sa.BigInteger(), nullable=True),
        sa.Column("regressions", sa.Integer(), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["target_id"],
            ["conversion_targets.id"],
            name=op.f("fk_conversion_steps_target_id_conversion_targets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_conversion_steps")),
        sa.UniqueConstraint("target_id", "step", name="uq_conversion_steps_target_step"),
    )
    with op.batch_alter_table("conversion_steps", schema=None) as batch_op:
        batch_op.create_index("ix_conversion_steps_command", ["command_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("conversion_steps", schema=None) as batch_op:
        batch_op.drop_index("ix_conversion_steps_command")

    op.drop_table("conversion_steps")
    with op.batch_alter_table("conversion_targets", schema=None) as batch_op:
        batch_op.drop_index("ix_conversion_targets_site")

    op.drop_table("conversion_targets")
    with op.batch_alter_table("conversion_events", schema=None) as batch_op:
        batch_op.drop_index("ix_conversion_events_order")

    op.drop_table("conversion_events")
    with op.batch_alter_table("site_postures", schema=None) as batch_op:
        batch_op.drop_index("ix_site_postures_unpublished")

    op.drop_table("site_postures")
    with op.batch_alter_table("conversion_orders", schema=None) as batch_op:
        batch_op.drop_index("ix_conversion_orders_state")
        batch_op.drop_index("ix_conversion_orders_requested")

    op.drop_table("conversion_orders")
