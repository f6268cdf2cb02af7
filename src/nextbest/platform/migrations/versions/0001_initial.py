"""Initial schema: experiments (with duplicate counters), decisions and outcomes, unique per (experiment, uuid).

Revision ID: 0001
Revises:
Create Date: 2024-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "experiments",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("owner", sa.String(100), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("alpha", sa.Double(), nullable=False),
        sa.Column("power", sa.Double(), nullable=False),
        sa.Column("effect", sa.Double(), nullable=False),
        sa.Column("sd", sa.Double(), nullable=False),
        sa.Column("sample_size", sa.BigInteger(), nullable=False),
        sa.Column("alternative", sa.String(16), nullable=False),
        sa.Column("salt", sa.String(64), nullable=False),
        sa.Column("token_hash", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="running"),
        sa.Column("duplicate_decisions", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("duplicate_outcomes", sa.BigInteger(), nullable=False, server_default="0"),
    )
    op.create_table(
        "decisions",
        sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
        sa.Column("experiment_id", sa.Integer(), sa.ForeignKey("experiments.id"), nullable=False),
        sa.Column("uuid", sa.String(128), nullable=False),
        sa.Column("value", sa.SmallInteger(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("experiment_id", "uuid", name="uq_decisions_experiment_uuid"),
    )
    op.create_table(
        "outcomes",
        sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
        sa.Column("experiment_id", sa.Integer(), sa.ForeignKey("experiments.id"), nullable=False),
        sa.Column("uuid", sa.String(128), nullable=False),
        sa.Column("arm", sa.String(16), nullable=False),
        sa.Column("decision", sa.SmallInteger(), nullable=False),
        sa.Column("revenue", sa.Double(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("experiment_id", "uuid", name="uq_outcomes_experiment_uuid"),
    )
    op.create_index("ix_outcomes_experiment_arm", "outcomes", ["experiment_id", "arm", "id"])


def downgrade() -> None:
    op.drop_index("ix_outcomes_experiment_arm", table_name="outcomes")
    op.drop_table("outcomes")
    op.drop_table("decisions")
    op.drop_table("experiments")
