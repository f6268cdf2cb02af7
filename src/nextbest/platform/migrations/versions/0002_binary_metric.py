"""Binary metric: experiments get ``metric`` ("continuous" for every existing row) and ``baseline`` (null).

Revision ID: 0002
Revises: 0001
Create Date: 2025-01-20
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("experiments") as batch:
        batch.add_column(sa.Column("metric", sa.String(16), nullable=False, server_default="continuous"))
        batch.add_column(sa.Column("baseline", sa.Double(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("experiments") as batch:
        batch.drop_column("baseline")
        batch.drop_column("metric")
