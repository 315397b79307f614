"""Each user's language and time zone

Revision ID: b81f4d2c6e93
Revises: a7e3c5d9f102
Create Date: 2026-12-04 03:10:00.000000

"""

import sqlalchemy as sa
from alembic import op

revision = "b81f4d2c6e93"
down_revision = "a7e3c5d9f102"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("locale", sa.String(length=8), nullable=True))
        batch.add_column(sa.Column("time_zone", sa.String(length=64), nullable=True))


def downgrade():
    with op.batch_alter_table("users") as batch:
        batch.drop_column("time_zone")
        batch.drop_column("locale")
