"""Several metrics: experiments get ``bayesian``, ``cuped`` (false for every existing row), ``correction`` ("holm")
and ``metrics`` (the secondary and guardrail specs; an empty list); outcomes get ``covariate``, ``denominator`` and
``values`` (null).

Revision ID: 0003
Revises: 0002
Create Date: 2025-02-10
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain-text defaults ('0' is false for SQLite's numeric BOOLEAN and for PostgreSQL's boolean input): an
    # expression default would make Alembic rebuild the SQLite table, which the outcomes' foreign key forbids.
    with op.batch_alter_table("experiments") as batch:
        batch.add_column(sa.Column("bayesian", sa.Boolean(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("cuped", sa.Boolean(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("correction", sa.String(8), nullable=False, server_default="holm"))
        batch.add_column(sa.Column("metrics", sa.JSON(), nullable=False, server_default="[]"))
    with op.batch_alter_table("outcomes") as batch:
        batch.add_column(sa.Column("covariate", sa.Double(), nullable=True))
        batch.add_column(sa.Column("denominator", sa.Double(), nullable=True))
        batch.add_column(sa.Column("values", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outcomes") as batch:
        batch.drop_column("values")
        batch.drop_column("denominator")
        batch.drop_column("covariate")
    with op.batch_alter_table("experiments") as batch:
        batch.drop_column("metrics")
        batch.drop_column("correction")
        batch.drop_column("cuped")
        batch.drop_column("bayesian")
