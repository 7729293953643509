"""exercises: exercises, their injected situations, and the alerts they label

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "exercises",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("scenario", sa.Text(), nullable=False),
        sa.Column("areas", sa.Text(), nullable=False),
        sa.Column("director", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("planned_start_ms", sa.BigInteger(), nullable=False),
        sa.Column("planned_end_ms", sa.BigInteger(), nullable=False),
        sa.Column("started_ms", sa.BigInteger(), nullable=True),
        sa.Column("ended_ms", sa.BigInteger(), nullable=True),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("created_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exercises")),
    )
    with op.batch_alter_table("exercises", schema=None) as batch_op:
        batch_op.create_index("ix_exercises_state", ["state"], unique=False)

    op.create_table(
        "exercise_situations",
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("exercise_id", sa.String(length=64), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("site", sa.String(length=64), nullable=False),
        sa.Column("area", sa.String(length=64), nullable=False),
        sa.Column("gateway", sa.String(length=64), nullable=False),
        sa.Column("device", sa.String(length=64), nullable=False),
        sa.Column("siren", sa.String(length=64), nullable=False),
        sa.Column("fault", sa.String(length=64), nullable=False),
        sa.Column("options", sa.Text(), nullable=False),
        sa.Column("origin", sa.String(length=64), nullable=False),
        sa.Column("injected_by", sa.String(length=128), nullable=False),
        sa.Column("injected_ms", sa.BigInteger(), nullable=False),
        sa.Column("inject_seq", sa.BigInteger(), nullable=False),
        sa.Column("published", sa.Boolean(), nullable=False),
        sa.Column("publish_detail", sa.Text(), nullable=False),
        sa.Column("repaired_by", sa.String(length=128), nullable=True),
        sa.Column("repaired_ms", sa.BigInteger(), nullable=True),
        sa.Column("repair_seq", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["exercise_id"],
            ["exercises.id"],
            name=op.f("fk_exercise_situations_exercise_id_exercises"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exercise_situations")),
        sa.UniqueConstraint("exercise_id", "number", name="uq_exercise_situations_number"),
    )
    with op.batch_alter_table("exercise_situations", schema=None) as batch_op:
        batch_op.create_index("ix_exercise_situations_site", ["site", "injected_ms"], unique=False)

    op.create_table(
        "exercise_alerts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("exercise_id", sa.String(length=64), nullable=False),
        sa.Column("situation_id", sa.String(length=128), nullable=False),
        sa.Column("alert_id", sa.Integer(), nullable=False),
        sa.Column("labelled_ms", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["exercise_id"],
            ["exercises.id"],
            name=op.f("fk_exercise_alerts_exercise_id_exercises"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["situation_id"],
            ["exercise_situations.id"],
            name=op.f("fk_exercise_alerts_situation_id_exercise_situations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_exercise_alerts")),
        sa.UniqueConstraint("alert_id", name="uq_exercise_alerts_alert_id"),
    )
    with op.batch_alter_table("exercise_alerts", schema=None) as batch_op:
        batch_op.create_index("ix_exercise_alerts_situation", ["situation_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("exercise_alerts", schema=None) as batch_op:
        batch_op.drop_index("ix_exercise_alerts_situation")
    op.drop_table("exercise_alerts")
    with op.batch_alter_table("exercise_situations", schema=None) as batch_op:
        batch_op.drop_index("ix_exercise_situations_site")
    op.drop_table("exercise_situations")
    with op.batch_alter_table("exercises", schema=None) as batch_op:
        batch_op.drop_index("ix_exercises_state")
    op.drop_table("exercises")
